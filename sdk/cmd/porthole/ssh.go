package main

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"regexp"
	"strings"
)

// cmdSSH: porthole ssh [user@]<device> [--stream ssh] [-- ssh args…]. It
// runs the system ssh with porthole itself as the ProxyCommand.
func cmdSSH(ctx context.Context, e *env, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("ssh", stderr)
	var cf connFlags
	cf.register(fs)
	var sf streamFlags
	fs.StringVar(&sf.stream, "stream", "ssh", "stream name (the device's target)")
	fs.StringVar(&sf.module, "module", "", "module id, for a stream to a module")
	var user, sshBin string
	fs.StringVar(&user, "user", "", "remote user (instead of user@device; for device ids that contain '@')")
	fs.StringVar(&sshBin, "ssh", "ssh", "ssh program to run")
	pos, extra, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: porthole ssh [user@]<device> [--stream ssh] [-- ssh args...]")
	}
	device := pos[0]
	if user == "" {
		if i := strings.LastIndexByte(device, '@'); i > 0 {
			user, device = device[:i], device[i+1:]
		}
	}
	if device == "" {
		return usagef("empty device id")
	}
	s, err := loadSettings(e, &cf, stderr)
	if err != nil {
		return err
	}
	if s.connectionString == "" {
		// Fail here rather than inside ssh's ProxyCommand.
		_, err := s.hubClient()
		return err
	}
	self, err := e.executable()
	if err != nil {
		return err
	}
	sshArgs := buildSSHArgs(self, device, user, sf, s, extra)
	cmd := e.command(ctx, sshBin, sshArgs...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	// A connection string from the command line reaches the ProxyCommand
	// through the environment: never on a command line others can read.
	if s.connectionFromFlag {
		cmd.Env = append(cmd.Environ(), envConnectionString+"="+s.connectionString)
	}
	s.log.Debug("running ssh", "device", device, "stream", sf.stream)
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		return &exitError{code: ee.ExitCode()}
	}
	return err
}

// buildSSHArgs returns ssh's arguments: the ProxyCommand, HostKeyAlias (so
// known_hosts entries are per device id, not per relay host), the user, the
// destination and the caller's extra arguments.
func buildSSHArgs(self, device, user string, sf streamFlags, s *settings, extra []string) []string {
	proxy := []string{self, "stdio", device, "--stream", sf.stream}
	if sf.module != "" {
		proxy = append(proxy, "--module", sf.module)
	}
	if s.configPath != "" {
		proxy = append(proxy, "--config", s.configPath)
	}
	if s.caFile != "" {
		proxy = append(proxy, "--ca", s.caFile)
	}
	for _, r := range s.resolveArgs {
		proxy = append(proxy, "--resolve", r)
	}
	if s.verbose {
		proxy = append(proxy, "-v")
	}
	args := []string{
		"-o", "ProxyCommand=" + proxyCommand(proxy),
		"-o", "HostKeyAlias=" + device, // no %-token expansion for this option
	}
	if user != "" {
		args = append(args, "-l", user)
	}
	args = append(args, sshDestination(device))
	return append(args, extra...)
}

// proxyCommand renders argv for ssh's ProxyCommand, which ssh expands for
// %-tokens and then runs with the user's shell ("exec <command>"): every
// word is single-quoted for the shell and every '%' doubled for ssh.
func proxyCommand(argv []string) string {
	words := make([]string, len(argv))
	for i, a := range argv {
		words[i] = sshEscape(shellQuote(a))
	}
	return strings.Join(words, " ")
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sshEscape doubles '%' so ssh's token expansion leaves s alone.
func sshEscape(s string) string { return strings.ReplaceAll(s, "%", "%%") }

var plainHost = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)

// sshDestination is the host argument ssh sees. With a ProxyCommand ssh
// never resolves it; it only names the connection (and matches Host blocks
// of ssh_config). Device ids ssh would misread (a leading '-', '@', spaces)
// become a fixed name.
func sshDestination(device string) string {
	if plainHost.MatchString(device) {
		return device
	}
	return "porthole-device"
}
