package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/testwait"
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
	got, err := buildSSHArgs("/bin/porthole", "dev1", "root", streamFlags{stream: "ssh2", module: "m"}, s, []string{"-p", "2222", "uptime"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"-o", "ProxyCommand='/bin/porthole' 'stdio' 'dev1' '--stream' 'ssh2' '--module' 'm' '--config' '/cfg.yaml' '--ca' '/ca.pem' '--resolve' 'hub:443=127.0.0.1:8443' '-v'",
		"-o", "HostKeyAlias=dev1",
		"-o", "ServerAliveInterval=15",
		"-o", "ServerAliveCountMax=3",
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
	if _, err := buildSSHArgs(`C:\porthole\`, "dev1", "", streamFlags{stream: "ssh"}, &settings{}, nil); err == nil {
		t.Error("a ProxyCommand ssh cannot parse was accepted")
	}
}

// The user's own -o options (before the remote command) replace the
// keepalive defaults; the remote command's words do not count.
func TestSSHOptionsSet(t *testing.T) {
	for _, tc := range []struct {
		extra []string
		want  []string
	}{
		{nil, nil},
		{[]string{"-o", "ServerAliveInterval=5"}, []string{"serveraliveinterval"}},
		{[]string{"-oServerAliveCountMax=9", "-v"}, []string{"serveralivecountmax"}},
		{[]string{"-o", "serveraliveinterval 5"}, []string{"serveraliveinterval"}},
		{[]string{"-p", "22", "-vo", "ServerAliveInterval=1"}, []string{"serveraliveinterval"}},
		{[]string{"-p", "-o", "-o", "X=1"}, []string{"x"}},       // -p takes "-o" as its port
		{[]string{"uptime", "-o", "ServerAliveInterval=1"}, nil}, // a remote command
		{[]string{"--", "-o", "ServerAliveInterval=1"}, nil},
	} {
		got := sshOptionsSet(tc.extra)
		want := map[string]bool{}
		for _, w := range tc.want {
			want[w] = true
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %v, want %v", tc.extra, got, want)
		}
	}
}

// lookTool finds a program a test needs; under CI its absence fails the
// test (the Makefile installs it), elsewhere it skips.
func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (install %s; make test does)", name, pkg)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

// TestSSHParsesOurArgs hands the arguments to the real ssh (ssh -G parses
// them and prints the result, without connecting) for device ids with
// every special character Azure allows, and checks what ssh understood:
// the host key alias, the ProxyCommand's words as the shell will see them,
// and the keepalive options with and without the user's own.
func TestSSHParsesOurArgs(t *testing.T) {
	sshBin := lookTool(t, "ssh", "openssh-client")
	sh := lookTool(t, "sh", "dash")
	ids := []string{"q'1", "dev#1", "#lead", "a%b%h", "x$y", "a;b", "(p)", "a,b=c", "a!b?c*d+e", "-lead", "a@b", "dev-1.site:a_b"}
	for _, dev := range ids {
		for _, extra := range [][]string{nil, {"-o", "ServerAliveInterval=5"}} {
			t.Run(dev+fmt.Sprint(len(extra)), func(t *testing.T) {
				args, err := buildSSHArgs("/opt/port hole/porthole", dev, "root", streamFlags{stream: "ssh"}, &settings{}, extra)
				if err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(sshBin, append([]string{"-G", "-F", "/dev/null"}, args...)...).CombinedOutput()
				if err != nil {
					t.Fatalf("ssh -G %q: %v\n%s", args, err, out)
				}
				conf := map[string]string{}
				for _, line := range strings.Split(string(out), "\n") {
					k, v, _ := strings.Cut(line, " ")
					conf[k] = v
				}
				if conf["hostkeyalias"] != dev {
					t.Errorf("hostkeyalias %q, want %q", conf["hostkeyalias"], dev)
				}
				if conf["user"] != "root" {
					t.Errorf("user %q", conf["user"])
				}
				wantAlive := "15"
				if extra != nil {
					wantAlive = "5"
				}
				if conf["serveraliveinterval"] != wantAlive || conf["serveralivecountmax"] != "3" {
					t.Errorf("serveraliveinterval %q countmax %q, want %s and 3", conf["serveraliveinterval"], conf["serveralivecountmax"], wantAlive)
				}
				// ssh runs the ProxyCommand with the shell after turning %% into %.
				pc := strings.ReplaceAll(conf["proxycommand"], "%%", "%")
				words, err := exec.Command(sh, "-c", `printf '%s\n' `+pc).Output()
				if err != nil {
					t.Fatalf("shell on %q: %v", pc, err)
				}
				want := []string{"/opt/port hole/porthole", "stdio", dev, "--stream", "ssh"}
				if got := strings.Split(strings.TrimSuffix(string(words), "\n"), "\n"); !reflect.DeepEqual(got, want) {
					t.Errorf("ProxyCommand words %q, want %q", got, want)
				}
			})
		}
	}
}

// sshQuote's output splits back to the value it quoted, and a
// ProxyCommand built from arguments without backslashes always passes
// ssh's quote check.
func FuzzSSHQuote(f *testing.F) {
	for _, s := range []string{"q'1", "#x", "", `a"b\c`, "a b", "%h", "dev1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if strings.ContainsAny(v, "\n\r\x00") {
			return // one option line, no NUL
		}
		words, err := sshSplit(sshQuote(v))
		if err != nil || len(words) != 1 || words[0] != v {
			t.Fatalf("sshQuote(%q) = %q splits to %q, %v", v, sshQuote(v), words, err)
		}
		if !strings.Contains(v, "\\") {
			if _, err := sshSplit(proxyCommand([]string{"/bin/porthole", "stdio", v})); err != nil {
				t.Fatalf("ProxyCommand for %q: %v", v, err)
			}
		}
	})
}

// TestSSHRunsSSH: "porthole ssh" opens the stream first, then runs ssh
// with the built arguments and the attach token in the environment only
// (no credential reaches ssh or its command line), and returns ssh's exit
// status.
func TestSSHRunsSSH(t *testing.T) {
	sh := lookTool(t, "sh", "dash")
	sim := hubsimtest.New(t)
	dev := startDevice(t, sim, "dev1", nil)
	e := testEnv(t, nil)
	var gotName string
	var gotArgs, gotEnv []string
	e.command = func(ctx context.Context, name string, args ...string) *exec.Cmd {
		gotName, gotArgs = name, args
		// Stand-in for ssh: report whether the token arrived in the
		// environment, then exit 3.
		cmd := exec.CommandContext(ctx, sh, "-c", `test -n "$PORTHOLE_ATTACH_TOKEN" && echo env-ok; exit 3`)
		return cmd
	}
	var stdout bytes.Buffer
	err := runEnv(context.Background(), e, append([]string{"ssh", "admin@dev1", "--stream", "ssh"}, append(simFlags(sim), "--", "-v")...),
		strings.NewReader(""), &stdout, io.Discard)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 3 {
		t.Fatalf("err = %v", err)
	}
	if gotName != "ssh" || !reflect.DeepEqual(gotArgs[len(gotArgs)-4:], []string{"-l", "admin", "dev1", "-v"}) {
		t.Errorf("ran %s %q", gotName, gotArgs)
	}
	if !strings.Contains(gotArgs[1], "'stdio' 'dev1' '--attach' '127.0.0.1:") {
		t.Errorf("ProxyCommand %q", gotArgs[1])
	}
	if line := strings.Join(append(gotArgs, gotEnv...), " "); strings.Contains(line, "SharedAccessKey") {
		t.Error("a credential is on ssh's command line")
	}
	if strings.TrimSpace(stdout.String()) != "env-ok" {
		t.Errorf("token not passed in the environment: %q", stdout.String())
	}
	// The stream was opened before ssh ran (ssh was given --attach, which
	// only an open stream serves); the device counts its accept just after
	// answering, so the count is awaited, bounded.
	testwait.True(t, 10*time.Second, "the device to count one accepted stream", func() bool { return dev.Accepted() == 1 })
}
