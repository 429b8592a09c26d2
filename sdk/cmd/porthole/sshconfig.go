package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// ssh-config writes ssh_config(5) Host blocks so that plain "ssh
// dev1.porthole" (and scp, rsync, sftp, editors' remote-SSH) reach dev1
// through "porthole stdio %h", which strips the suffix.
//
// ProxyCommand is run differently per OS: OpenSSH on Linux and macOS
// expands %-tokens and hands the line to the user's shell ("exec …"), so
// every word is single-quoted for a POSIX shell; Windows' OpenSSH starts
// the command line itself with no POSIX shell, so words with blanks are
// double-quoted for the Windows command-line rules and single quotes, which
// Windows does not understand, are never used. Both are checked against
// ssh's own option splitting (sshSplit).

// sshConfigFile is the file --write installs under ~/.ssh/config.d/.
const sshConfigFile = "porthole"

// proxyCommandFor renders argv as a ProxyCommand for goos.
func proxyCommandFor(goos string, argv []string) (string, error) {
	var pc string
	if goos == "windows" {
		words := make([]string, len(argv))
		for i, a := range argv {
			if strings.ContainsAny(a, "\"\n") {
				return "", fmt.Errorf("cannot quote %q for Windows' OpenSSH", a)
			}
			w := a
			if a == "" || strings.ContainsAny(a, " \t'#;&|<>()^") {
				// Windows command-line quoting: a run of backslashes before the
				// closing quote is doubled.
				trail := len(a) - len(strings.TrimRight(a, `\`))
				w = `"` + a + strings.Repeat(`\`, trail) + `"`
			}
			words[i] = sshEscape(w)
		}
		pc = strings.Join(words, " ")
	} else {
		pc = proxyCommand(argv)
	}
	if _, err := sshSplit(pc); err != nil {
		return "", fmt.Errorf("cannot hand ssh a ProxyCommand for these arguments (%v); avoid backslashes in paths", err)
	}
	return pc, nil
}

// sshConfigText returns the Host blocks.
func sshConfigText(goos, self string, s *settings) (string, error) {
	argv := []string{self, "stdio", "%h"}
	if s.profile != "" {
		argv = append(argv, "--profile", s.profile)
	} else if s.configPath != "" {
		argv = append(argv, "--config", s.configPath)
	}
	pc, err := proxyCommandFor(goos, argv)
	if err != nil {
		return "", err
	}
	// %h must reach ssh unescaped: it is the token ssh replaces.
	pc = strings.ReplaceAll(pc, "%%h", "%h")
	suffix := s.hostSuffix
	if !strings.HasPrefix(suffix, ".") {
		return "", usagef("ssh host_suffix %q: it must start with '.'", suffix)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by \"porthole ssh-config\" (porthole %s). Regenerate it rather than editing.\n", version)
	fmt.Fprintf(&b, "# ssh <device>%s, scp, rsync and sftp reach <device> through its IoT hub.\n", suffix)
	fmt.Fprintf(&b, "Host *%s\n", suffix)
	fmt.Fprintf(&b, "    ProxyCommand %s\n", pc)
	if s.sshUser != "" {
		fmt.Fprintf(&b, "    User %s\n", sshQuote(s.sshUser))
	}
	fmt.Fprintf(&b, "    ServerAliveInterval %s\n", defaultServerAliveInterval)
	fmt.Fprintf(&b, "    ServerAliveCountMax %s\n", defaultServerAliveCountMax)
	return b.String(), nil
}

// cmdSSHConfig: porthole ssh-config [--write].
func cmdSSHConfig(ctx context.Context, e *env, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ssh-config", stderr)
	var cf connFlags
	cf.register(fs)
	write := fs.Bool("write", false, "install the blocks as ~/.ssh/config.d/"+sshConfigFile+" (and include config.d/* from ~/.ssh/config)")
	pos, extra, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || len(extra) != 0 {
		return usagef("usage: porthole ssh-config [--write]")
	}
	s, err := loadSettings(e, &cf, stderr)
	if err != nil {
		return err
	}
	self, err := e.executable()
	if err != nil {
		return err
	}
	goos := runtime.GOOS
	if e.goos != "" {
		goos = e.goos
	}
	text, err := sshConfigText(goos, self, s)
	if err != nil {
		return err
	}
	if !*write {
		_, err := io.WriteString(stdout, text)
		return err
	}
	home := ""
	if e.homeDir != nil {
		home, err = e.homeDir()
	} else {
		home, err = os.UserHomeDir()
	}
	if err != nil {
		return err
	}
	sshDir := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(filepath.Join(sshDir, "config.d"), 0o700); err != nil {
		return err
	}
	path := filepath.Join(sshDir, "config.d", sshConfigFile)
	if err := writeFileAtomic(path, []byte(text)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", path)
	added, err := ensureInclude(filepath.Join(sshDir, "config"))
	if err != nil {
		return fmt.Errorf("%s: %w (add \"Include config.d/*\" at its top yourself)", filepath.Join(sshDir, "config"), err)
	}
	if added {
		fmt.Fprintf(stdout, "added \"Include config.d/*\" at the top of %s\n", filepath.Join(sshDir, "config"))
	}
	return nil
}

// includeLine is what ~/.ssh/config needs, before any Host block, for the
// files under config.d to count.
const includeLine = "Include config.d/*"

// ensureInclude puts includeLine at the top of the ssh config unless an
// Include of config.d is there already. It reports whether it changed the
// file.
func ensureInclude(path string) (bool, error) {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && strings.EqualFold(f[0], "Include") && (strings.HasPrefix(f[1], "config.d/") || strings.Contains(f[1], "/.ssh/config.d/")) {
			return false, nil
		}
	}
	out := bytes.NewBufferString(includeLine + "\n")
	if len(b) > 0 {
		out.WriteString("\n")
		out.Write(b)
	}
	return true, writeFileAtomic(path, out.Bytes())
}
