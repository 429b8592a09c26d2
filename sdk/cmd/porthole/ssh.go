package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/porthole-iot/porthole/sdk/service"
)

// cmdSSH: porthole ssh [user@]<device> [--stream ssh] [-- ssh args…]. It
// opens the stream, then runs the system ssh with porthole itself as the
// ProxyCommand, attached to that stream (attach.go).
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
	quiet := fs.Bool("q", false, "no progress line while waiting for the device")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the device to accept the stream")
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
	if *timeout < time.Second {
		return usagef("--timeout %v is too short", *timeout)
	}
	s, err := loadSettings(e, &cf, stderr)
	if err != nil {
		return err
	}
	device = s.stripSuffix(device)
	self, err := e.executable()
	if err != nil {
		return err
	}

	// Open the stream first: a refusal or timeout is porthole's to report.
	progress := !*quiet && e.isTerminal != nil && e.isTerminal(stderr)
	openCtx, cancelOpen := context.WithTimeout(ctx, *timeout)
	started := time.Now()
	printed := false
	conn, _, err := s.openStream(openCtx, e, device, sf, func(t target) {
		if progress && !printed { // once, also when a stale cache entry is retried
			printed = true
			fmt.Fprintf(stderr, "connecting to %s via %s…", device, t.hub.name)
		}
	}, service.WithResponseTimeout(*timeout), service.WithConnectTimeout(*timeout))
	cancelOpen()
	if err != nil {
		if printed {
			fmt.Fprintln(stderr, " failed")
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return fmt.Errorf("device %s did not accept stream %q within %v (--timeout): %w", device, sf.stream, *timeout, err)
		}
		return err
	}
	if printed {
		fmt.Fprintf(stderr, " accepted in %d ms\n", time.Since(started).Milliseconds())
	}
	att, err := newAttachment(ctx, conn, s.log)
	if err != nil {
		conn.Close()
		return err
	}
	proxy := []string{self, "stdio", device, "--attach", att.addr()}
	if s.verbose {
		proxy = append(proxy, "-v")
	}
	sshArgs, err := sshArgsFor(proxy, device, user, extra)
	if err != nil {
		att.Close()
		return err
	}
	cmd := e.command(ctx, sshBin, sshArgs...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	// The ProxyCommand's token reaches it through the environment: never
	// on a command line others can read. No credential is passed on.
	cmd.Env = append(cmd.Environ(), envAttachToken+"="+att.token)
	s.log.Debug("running ssh", "device", device, "stream", sf.stream)
	err = cmd.Run()
	closeErr := att.Close()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		if ee.ExitCode() != 0 && closeErr != nil {
			fmt.Fprintln(stderr, "porthole:", closeErr)
		}
		return &exitError{code: ee.ExitCode()}
	}
	return err
}

// Keepalive defaults of "porthole ssh": ssh asks the server for a sign of
// life after 15 s of silence and gives up after 3 unanswered asks, so a
// session whose path died (a partitioned stream) ends within about 45 s
// instead of hanging, even with an agent that has no stream keepalive. The
// user's own -o ServerAliveInterval / ServerAliveCountMax replace them.
const (
	defaultServerAliveInterval = "15"
	defaultServerAliveCountMax = "3"
)

// buildSSHArgs returns ssh's arguments: the ProxyCommand, HostKeyAlias (so
// known_hosts entries are per device id, not per relay host), the
// keepalive defaults the caller did not set, the user, the destination and
// the caller's extra arguments. Values are quoted for ssh's option parser
// (which, since OpenSSH 8.7, splits every option line on quotes), so ids
// with ' # " and the like reach ssh intact.
func buildSSHArgs(self, device, user string, sf streamFlags, s *settings, extra []string) ([]string, error) {
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
	return sshArgsFor(proxy, device, user, extra)
}

// sshArgsFor returns ssh's arguments for a ProxyCommand of argv.
func sshArgsFor(proxy []string, device, user string, extra []string) ([]string, error) {
	pc := proxyCommand(proxy)
	if _, err := sshSplit(pc); err != nil {
		return nil, fmt.Errorf("cannot hand ssh a ProxyCommand for these arguments (%v); avoid backslashes in paths", err)
	}
	args := []string{
		"-o", "ProxyCommand=" + pc,
		"-o", "HostKeyAlias=" + sshQuote(device), // no %-token expansion for this option
	}
	set := sshOptionsSet(extra)
	if !set["serveraliveinterval"] {
		args = append(args, "-o", "ServerAliveInterval="+defaultServerAliveInterval)
	}
	if !set["serveralivecountmax"] {
		args = append(args, "-o", "ServerAliveCountMax="+defaultServerAliveCountMax)
	}
	if user != "" {
		args = append(args, "-l", user)
	}
	args = append(args, sshDestination(device))
	return append(args, extra...), nil
}

// sshArgOptions are ssh's option letters that take an argument (ssh(1)).
const sshArgOptions = "BbcDEeFIiJLlmOopQRSWw"

// sshOptionsSet returns the lower-cased names of the -o options in args,
// the arguments ssh reads after the destination, up to the remote command.
func sshOptionsSet(args []string) map[string]bool {
	set := map[string]bool{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			break // the remote command starts here
		}
		for j := 1; j < len(a); j++ {
			if !strings.ContainsRune(sshArgOptions, rune(a[j])) {
				continue // a flag without an argument
			}
			val := a[j+1:]
			if val == "" && i+1 < len(args) {
				i++
				val = args[i]
			}
			if a[j] == 'o' {
				name, _, _ := strings.Cut(strings.TrimSpace(val), "=")
				name, _, _ = strings.Cut(name, " ")
				set[strings.ToLower(name)] = true
			}
			break
		}
	}
	return set
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

// sshQuote quotes an option value for ssh's option parser: a value with a
// quote, backslash, '#', blank or nothing at all is put in double quotes
// with " ' and \ escaped by a backslash; others are left as they are.
func sshQuote(v string) string {
	if v != "" && !strings.ContainsAny(v, "'\"\\# \t") {
		return v
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c == '\'' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}

// errSSHQuotes is what ssh calls "invalid quotes".
var errSSHQuotes = errors.New("unbalanced quotes")

// sshSplit splits an option value into words the way OpenSSH's argv_split
// (misc.c; used on every option line since 8.7) does: blanks separate
// words, ' and " quote, a backslash escapes a quote, a backslash or (outside
// quotes) a blank, and a '#' that starts a word starts a comment. It exists
// to check what buildSSHArgs hands ssh.
func sshSplit(s string) ([]string, error) {
	var words []string
	i := 0
	for i < len(s) {
		if s[i] == ' ' || s[i] == '\t' {
			i++
			continue
		}
		if s[i] == '#' {
			break
		}
		var w strings.Builder
		var quote byte
		for ; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\' && i+1 < len(s) && (s[i+1] == '\'' || s[i+1] == '"' || s[i+1] == '\\' || (quote == 0 && s[i+1] == ' ')):
				i++
				w.WriteByte(s[i])
				continue
			case quote == 0 && (c == ' ' || c == '\t'):
			case quote == 0 && (c == '"' || c == '\''):
				quote = c
				continue
			case quote != 0 && c == quote:
				quote = 0
				continue
			default:
				w.WriteByte(c)
				continue
			}
			break // a blank outside quotes ends the word
		}
		if quote != 0 {
			return nil, errSSHQuotes
		}
		words = append(words, w.String())
	}
	return words, nil
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
