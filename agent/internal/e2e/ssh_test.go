package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
)

// sshServer is an SSH daemon standing in for the device's.
type sshServer struct {
	*proc
	addr string
	user string // the account to log in as
}

// newSSHKey makes an ed25519 key pair dir/name, dir/name.pub.
func newSSHKey(t testing.TB, dir, name string) string {
	t.Helper()
	keygen := hubsimtest.RequireTool(t, "ssh-keygen", "openssh-client")
	path := filepath.Join(dir, name)
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "porthole-e2e", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return path
}

// startSSHD runs OpenSSH's sshd on a free loopback port: throw-away host
// key, only authorizedKeys, no system config (-f /dev/null), so the
// internal SFTP server is named explicitly (OpenSSH ≥ 9 scp uses SFTP).
func startSSHD(t testing.TB, dir, name, authorizedKeys string) *sshServer {
	t.Helper()
	return startSSHDIn(t, dir, name, authorizedKeys, nil, nil)
}

// startSSHDIn is startSSHD run through wrap (e.g. "ip netns exec NAME")
// and checked with dial (nil: a dial from this process).
func startSSHDIn(t testing.TB, dir, name, authorizedKeys string, wrap []string, dial func(string) (net.Conn, error)) *sshServer {
	t.Helper()
	sshd := hubsimtest.RequireTool(t, "sshd", "openssh-server")
	hostKey := newSSHKey(t, dir, name+"-hostkey")
	if os.Geteuid() == 0 {
		// sshd running as root insists on its privilege separation
		// directory; the Debian package creates it only when the service
		// starts.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("sshd privilege separation directory: %v", err)
		}
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	_, port, _ := strings.Cut(addr, ":")
	argv := append(append([]string(nil), wrap...), sshd)
	p := startProc(t, dir, name, nil, argv[0], append(argv[1:], "-D", "-e", "-f", "/dev/null",
		"-p", port, "-o", "ListenAddress=127.0.0.1",
		"-h", hostKey,
		"-o", "AuthorizedKeysFile="+authorizedKeys,
		"-o", "StrictModes=no", // temp dirs and CI homes have loose modes
		"-o", "Subsystem=sftp internal-sftp",
		"-o", "PidFile=none",
		"-o", "UsePAM=no",
		"-o", "PasswordAuthentication=no",
		"-o", "KbdInteractiveAuthentication=no",
		"-o", "PermitRootLogin=prohibit-password", // CI runs as root
		"-o", "MaxStartups=64",
		"-o", "MaxSessions=64",
	)...)
	if dial == nil {
		waitBanner(t, p, addr)
	} else {
		waitBannerDial(t, p, addr, dial)
	}
	return &sshServer{proc: p, addr: addr, user: currentUser(t)}
}

// startDropbear runs dropbear as the device's SSH server. dropbear reads
// authorized_keys only from the login account's home directory in the
// password database, so it runs in a private mount namespace where a
// throw-away home is bind-mounted over root's; nothing outside the
// namespace changes. This needs root.
func startDropbear(t testing.TB, dir, authorizedKeys string) *sshServer {
	t.Helper()
	dropbear := hubsimtest.RequireTool(t, "dropbear", "dropbear-bin")
	dropbearkey := hubsimtest.RequireTool(t, "dropbearkey", "dropbear-bin")
	unshare := hubsimtest.RequireTool(t, "unshare", "util-linux")
	if os.Geteuid() != 0 {
		msg := "the dropbear test needs root (a mount namespace gives dropbear a throw-away home)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	root, err := user.LookupId("0")
	if err != nil || root.HomeDir == "" {
		t.Fatalf("root's home directory: %v", err)
	}
	hostKey := filepath.Join(dir, "dropbear-hostkey")
	if out, err := exec.Command(dropbearkey, "-t", "ed25519", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("dropbearkey: %v\n%s", err, out)
	}
	home := filepath.Join(dir, "dropbear-home")
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	keys, err := os.ReadFile(authorizedKeys)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "authorized_keys"), keys, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	// -W: a 1 MiB receive window instead of dropbear's 24 KiB (DESIGN field notes).
	const script = `mount --bind "$1" "$2" && exec "$3" -F -E -s -p "$4" -r "$5" -W 1048576 -P "$6"`
	p := startProc(t, dir, "dropbear", nil, unshare, "--mount", "--propagation", "private",
		"sh", "-c", script, "sh", home, root.HomeDir, dropbear, addr, hostKey, filepath.Join(dir, "dropbear.pid"))
	waitBanner(t, p, addr)
	return &sshServer{proc: p, addr: addr, user: "root"}
}

// sshOpts are the client options of a throw-away, non-interactive session:
// no user or system config, only the operator's key, no known_hosts.
func (w *world) sshOpts() []string {
	return []string{
		"-F", "/dev/null",
		"-i", w.sshKey,
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null",
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR",
		"-o", "ServerAliveInterval=5",
		"-o", "ServerAliveCountMax=3",
	}
}

// cmdResult is what a finished client command left.
type cmdResult struct {
	stdout, stderr string
	err            error
	took           time.Duration
}

// command builds a client process bound to ctx.
func command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = childEnv()
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func runCmd(cmd *exec.Cmd, stdin io.Reader, stdout io.Writer) cmdResult {
	var outBuf, errBuf bytes.Buffer
	cmd.Stdin = stdin
	if stdout == nil {
		stdout = &outBuf
	}
	cmd.Stdout, cmd.Stderr = stdout, &errBuf
	start := time.Now()
	err := cmd.Run()
	return cmdResult{stdout: outBuf.String(), stderr: errBuf.String(), err: err, took: time.Since(start)}
}

// ssh runs "porthole ssh user@dev1 --stream stream -- <opts> command".
func (w *world) ssh(ctx context.Context, stream, user, remoteCmd string, stdin io.Reader, stdout io.Writer) cmdResult {
	args := []string{"ssh", user + "@" + deviceID, "--stream", stream, "--config", w.opConfig, "--"}
	args = append(args, w.sshOpts()...)
	args = append(args, remoteCmd)
	return runCmd(command(ctx, binaries(w.t).porthole, args...), stdin, stdout)
}

// proxyCommand is ssh's ProxyCommand for the stream.
func (w *world) proxyCommand(stream string) string {
	return "'" + binaries(w.t).porthole + "' stdio " + deviceID + " --stream " + stream + " --config '" + w.opConfig + "'"
}

// scp copies with the system scp through "porthole stdio". legacy selects
// the SCP protocol (-O) instead of SFTP.
func (w *world) scp(ctx context.Context, stream string, legacy bool, src, dst string) cmdResult {
	scp := hubsimtest.RequireTool(w.t, "scp", "openssh-client")
	args := append(w.sshOpts(), "-q", "-o", "ProxyCommand="+w.proxyCommand(stream))
	if legacy {
		args = append(args, "-O")
	}
	args = append(args, src, dst)
	return runCmd(command(ctx, scp, args...), nil, nil)
}

// stdio runs "porthole stdio dev1 --stream stream" with empty input.
func (w *world) stdio(ctx context.Context, stream string) cmdResult {
	return runCmd(command(ctx, binaries(w.t).porthole, "stdio", deviceID, "--stream", stream, "--config", w.opConfig),
		strings.NewReader(""), nil)
}

// randomFile writes size random bytes to path and returns their SHA-256.
func randomFile(t testing.TB, path string, size int64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fileSum returns the SHA-256 of a file.
func fileSum(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func mibps(n int64, d time.Duration) float64 {
	return float64(n) / (1 << 20) / d.Seconds()
}
