package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestSSHConfigPerOS: the ProxyCommand line for each OS, checked word by
// word with ssh's own option splitting, and (on Linux and macOS, where ssh
// hands it to /bin/sh) with a real shell.
func TestSSHConfigPerOS(t *testing.T) {
	for _, tc := range []struct {
		goos, self string
		s          settings
		wantPC     string
		words      []string
	}{
		{"linux", "/usr/local/bin/porthole", settings{hostSuffix: ".porthole"},
			`'/usr/local/bin/porthole' 'stdio' '%h'`, []string{"/usr/local/bin/porthole", "stdio", "%h"}},
		{"linux", "/opt/port hole/porthole", settings{hostSuffix: ".lab", profile: "lab"},
			`'/opt/port hole/porthole' 'stdio' '%h' '--profile' 'lab'`, []string{"/opt/port hole/porthole", "stdio", "%h", "--profile", "lab"}},
		{"darwin", "/Users/ana/Library/Application Support/porthole/porthole", settings{hostSuffix: ".porthole", configPath: "/Users/ana/.config/porthole/config.yaml"},
			`'/Users/ana/Library/Application Support/porthole/porthole' 'stdio' '%h' '--config' '/Users/ana/.config/porthole/config.yaml'`,
			[]string{"/Users/ana/Library/Application Support/porthole/porthole", "stdio", "%h", "--config", "/Users/ana/.config/porthole/config.yaml"}},
		{"windows", `C:\Program Files\porthole\porthole.exe`, settings{hostSuffix: ".porthole"},
			`"C:\Program Files\porthole\porthole.exe" stdio %h`, []string{`C:\Program Files\porthole\porthole.exe`, "stdio", "%h"}},
		{"windows", `C:\Users\ana\bin\porthole.exe`, settings{hostSuffix: ".porthole", configPath: `C:\Users\ana\AppData\Roaming\porthole\config.yaml`},
			`C:\Users\ana\bin\porthole.exe stdio %h --config C:\Users\ana\AppData\Roaming\porthole\config.yaml`,
			[]string{`C:\Users\ana\bin\porthole.exe`, "stdio", "%h", "--config", `C:\Users\ana\AppData\Roaming\porthole\config.yaml`}},
	} {
		t.Run(tc.goos, func(t *testing.T) {
			s := tc.s
			text, err := sshConfigText(tc.goos, tc.self, &s)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(text, "\nHost *"+s.hostSuffix+"\n") || !strings.Contains(text, "\n    ServerAliveInterval 15\n") {
				t.Errorf("text:\n%s", text)
			}
			var pc string
			for _, l := range strings.Split(text, "\n") {
				if v, ok := strings.CutPrefix(l, "    ProxyCommand "); ok {
					pc = v
				}
			}
			if pc != tc.wantPC {
				t.Errorf("ProxyCommand\n got %s\nwant %s", pc, tc.wantPC)
			}
			words, err := sshSplit(pc)
			if err != nil {
				t.Fatal(err)
			}
			if tc.goos == "windows" {
				// No POSIX shell on Windows: ssh's split words are the argv
				// (after Windows' own unquoting, which these words survive).
				if strings.Contains(pc, "'") {
					t.Errorf("single quotes for Windows: %s", pc)
				}
				if !reflect.DeepEqual(words, tc.words) {
					t.Errorf("words %q, want %q", words, tc.words)
				}
				return
			}
			sh := lookTool(t, "sh", "dash")
			out, err := exec.Command(sh, "-c", `printf '%s\n' `+pc).Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"); !reflect.DeepEqual(got, tc.words) {
				t.Errorf("shell words %q, want %q", got, tc.words)
			}
		})
	}
	if _, err := proxyCommandFor("windows", []string{`C:\a"b\porthole.exe`}); err == nil {
		t.Error("a double quote in a Windows path was accepted")
	}
}

// TestSSHConfigWrite: --write installs the file (0600) and puts the
// Include at the top of ~/.ssh/config once, keeping what was there.
func TestSSHConfigWrite(t *testing.T) {
	e := testEnv(t, nil)
	home := t.TempDir()
	e.homeDir = func() (string, error) { return home, nil }
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	old := "Host old\n    User x\n"
	if err := os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		var out bytes.Buffer
		if err := runEnv(context.Background(), e, []string{"ssh-config", "--write"}, nil, &out, os.Stderr); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(home, ".ssh", "config"))
	if err != nil || string(b) != includeLine+"\n\n"+old {
		t.Errorf("ssh config %q %v", b, err)
	}
	st, err := os.Stat(filepath.Join(home, ".ssh", "config.d", sshConfigFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("installed file %v %v", st, err)
	}
}

// TestSSHConfigWithRealSSH: the real ssh and scp use the installed config
// to reach an sshd on a device on the second hub, by name only; "porthole
// ssh" runs the real ssh over the stream it opened.
func TestSSHConfigWithRealSSH(t *testing.T) {
	sshBin := lookTool(t, "ssh", "openssh-client")
	scpBin := lookTool(t, "scp", "openssh-client")
	sshd := lookTool(t, "sshd", "openssh-server")
	keygen := lookTool(t, "ssh-keygen", "openssh-client")
	if os.Geteuid() == 0 {
		// sshd as root insists on its privilege separation directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	key := func(name string) string {
		p := filepath.Join(dir, name)
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", p).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		return p
	}
	hostKey, userKey := key("hostkey"), key("userkey")
	authorized := userKey + ".pub"

	f := newFleet(t)
	f.deviceServing(t, "dev-us", hubUS, func(ctx context.Context, conn net.Conn) {
		// One sshd per stream, in inetd mode: the stream is its stdin
		// and stdout.
		cmd := exec.CommandContext(ctx, sshd, "-i", "-e", "-f", "/dev/null", "-h", hostKey,
			"-o", "AuthorizedKeysFile="+authorized, "-o", "StrictModes=no", "-o", "UsePAM=no",
			"-o", "PidFile=none", "-o", "Subsystem=sftp internal-sftp", "-o", "PasswordAuthentication=no",
			"-o", "PermitRootLogin=prohibit-password")
		cmd.Stdin, cmd.Stdout = conn, conn
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Run(); err != nil {
			t.Logf("sshd: %v\n%s", err, errOut.String())
		}
	})

	bin := buildPorthole(t)
	home := t.TempDir()
	envv := []string{"HOME=" + home, "XDG_CACHE_HOME=" + filepath.Join(home, ".cache"), "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"PATH=" + os.Getenv("PATH")}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = envv
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %q: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	run(bin, "ssh-config", "--write", "--config", f.config)
	user := os.Getenv("USER")
	if user == "" {
		user = "root"
	}
	common := []string{"-F", filepath.Join(home, ".ssh", "config"), "-i", userKey, "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=" + filepath.Join(home, "known_hosts"), "-o", "User=" + user}
	if out := run(sshBin, append(common, "dev-us.porthole", "echo", "hello-from-dev-us")...); !strings.Contains(out, "hello-from-dev-us") {
		t.Errorf("ssh output %q", out)
	}
	// porthole ssh itself: the stream opened first, then the real ssh
	// attached to it.
	if out := run(bin, append([]string{"ssh", "dev-us", "-q", "--config", f.config, "--user", user, "--"},
		"-i", userKey, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile="+filepath.Join(home, "known_hosts2"),
		"echo", "porthole-ssh-ok")...); !strings.Contains(out, "porthole-ssh-ok") {
		t.Errorf("porthole ssh output %q", out)
	}
	src := filepath.Join(dir, "payload.txt")
	if err := os.WriteFile(src, []byte("through the hub\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "copied.txt")
	run(scpBin, append(common, src, "dev-us.porthole:"+dst)...)
	if b, err := os.ReadFile(dst); err != nil || string(b) != "through the hub\n" {
		t.Errorf("scp: %q %v", b, err)
	}
}

// buildPorthole builds the porthole binary for tests that run it as a
// separate program (ssh's ProxyCommand, shell completion).
func buildPorthole(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "porthole")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return bin
}
