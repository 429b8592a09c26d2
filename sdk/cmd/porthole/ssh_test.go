package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

// TestProxyCommandQuoting runs the rendered ProxyCommand through a real
// shell (as ssh does, after undoing ssh's %% escaping) and checks that every
// argument arrives intact.
func TestProxyCommandQuoting(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	argv := []string{"/path with space/porthole", "stdio", `dev'1 "$HOME" %h ; rm`, "--stream", "ssh", "--resolve", "h:443=127.0.0.1:1"}
	cmd := proxyCommand(argv)
	if strings.Contains(cmd, "%h") && !strings.Contains(cmd, "%%h") {
		t.Fatalf("unescaped %%-token in %q", cmd)
	}
	unescaped := strings.ReplaceAll(cmd, "%%", "%") // what ssh hands the shell
	out, err := exec.Command(sh, "-c", `printf '%s\n' `+unescaped).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if !reflect.DeepEqual(got, argv) {
		t.Errorf("shell saw %q, want %q", got, argv)
	}
}

func TestBuildSSHArgs(t *testing.T) {
	s := &settings{caFile: "/ca.pem", resolveArgs: []string{"hub:443=127.0.0.1:8443"}, configPath: "/cfg.yaml", verbose: true}
	got := buildSSHArgs("/bin/porthole", "dev1", "root", streamFlags{stream: "ssh2", module: "m"}, s, []string{"-p", "2222", "uptime"})
	want := []string{
		"-o", "ProxyCommand='/bin/porthole' 'stdio' 'dev1' '--stream' 'ssh2' '--module' 'm' '--config' '/cfg.yaml' '--ca' '/ca.pem' '--resolve' 'hub:443=127.0.0.1:8443' '-v'",
		"-o", "HostKeyAlias=dev1",
		"-l", "root",
		"dev1", "-p", "2222", "uptime",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	for dev, dest := range map[string]string{"dev1": "dev1", "gw-01.site:a": "gw-01.site:a", "-x": "porthole-device", "a@b": "porthole-device", "a$b": "porthole-device"} {
		if d := sshDestination(dev); d != dest {
			t.Errorf("destination of %q = %q, want %q", dev, d, dest)
		}
	}
}

// TestSSHRunsSSH: "porthole ssh" runs ssh with the built arguments, passes a
// flag-given connection string through the environment only, and returns
// ssh's exit status.
func TestSSHRunsSSH(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	e := testEnv(t, nil)
	var gotName string
	var gotArgs []string
	var cmd *exec.Cmd
	e.command = func(ctx context.Context, name string, args ...string) *exec.Cmd {
		gotName, gotArgs = name, args
		// Stand-in for ssh: report whether the connection string arrived
		// in the environment, then exit 3.
		cmd = exec.CommandContext(ctx, sh, "-c", `test -n "$PORTHOLE_CONNECTION_STRING" && echo env-ok; exit 3`)
		return cmd
	}
	var stdout bytes.Buffer
	err = runEnv(context.Background(), e, []string{"ssh", "admin@dev1", "--connection-string", cs("hub.example"), "--stream", "ssh", "--", "-v"},
		strings.NewReader(""), &stdout, io.Discard)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 3 {
		t.Fatalf("err = %v", err)
	}
	if gotName != "ssh" || !reflect.DeepEqual(gotArgs[len(gotArgs)-4:], []string{"-l", "admin", "dev1", "-v"}) {
		t.Errorf("ran %s %q", gotName, gotArgs)
	}
	if strings.Contains(strings.Join(gotArgs, " "), testKey) {
		t.Error("the key is on ssh's command line")
	}
	if strings.TrimSpace(stdout.String()) != "env-ok" {
		t.Errorf("connection string not passed in the environment: %q", stdout.String())
	}
}
