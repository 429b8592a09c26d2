package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"
)

// usageError is a bad command line (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitError carries a child's exit status (porthole ssh), already reported.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// env is what run takes from the process; tests replace it.
type env struct {
	getenv     func(string) string
	executable func() (string, error)
	// command builds the ssh process; nil means exec.CommandContext.
	command func(ctx context.Context, name string, args ...string) *exec.Cmd
	// onListen, if non-nil, is told the proxy's listening address.
	onListen func(net.Addr)
	// userConfigDir returns the base of the default config path.
	userConfigDir func() (string, error)
	// userCacheDir returns the base of the lookup cache's directory.
	userCacheDir func() (string, error)
	// now is the clock of the lookup cache; nil means time.Now.
	now func() time.Time
	// goos overrides runtime.GOOS for ssh-config (tests); "" is the real one.
	goos string
	// homeDir returns the home directory (~/.ssh); nil means os.UserHomeDir.
	homeDir func() (string, error)
	// isTerminal tells whether w is a terminal (for progress lines).
	isTerminal func(w io.Writer) bool
}

func defaultEnv() *env {
	return &env{
		getenv:        os.Getenv,
		executable:    os.Executable,
		command:       exec.CommandContext,
		userConfigDir: os.UserConfigDir,
		userCacheDir:  os.UserCacheDir,
		isTerminal:    isTerminal,
	}
}

const usage = `usage:
  porthole ssh [user@]<device> [--stream ssh] [--user U] [-- ssh args...]
  porthole stdio <device> [--stream ssh]
  porthole proxy <device> -L [addr:]<port>[:target] [-L ...] [--stream ssh] [--mux auto|on|off]
  porthole socks <device> -D [addr:]<port>
  porthole invoke <device> <method> [--payload JSON] [--timeout 30s] [-o json]
  porthole devices [--hub H] [--query Q] [-o table|json]
  porthole status <device> [-o table|json]
  porthole ssh-config [--write]
  porthole dps enroll <registrationId> [--symmetric-key K] [--group] [--hub host]...
  porthole dps get <id> [--group] [-o json]
  porthole dps delete <id> [--group]
  porthole dps derive-key --group-key-file <file|-> (--out-dir <dir> | --stdout) <registrationId>...
connection flags (every command): --connection-string, --dps-connection-string,
  --ca <file>, --resolve host:port=ip:port (repeatable), --config <file>, --profile P,
  --hub NAME, -v
`

// run is porthole's main, callable from tests.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return runEnv(ctx, defaultEnv(), args, stdin, stdout, stderr)
}

func runEnv(ctx context.Context, e *env, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usagef("no command")
	}
	root := newRoot(ctx, e, stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil && strings.HasPrefix(err.Error(), "unknown command") {
		fmt.Fprint(stderr, usage)
		return &usageError{msg: err.Error()}
	}
	if err != nil && isCobraUsage(err) {
		return &usageError{msg: err.Error()}
	}
	return err
}

// isCobraUsage tells cobra's own argument errors (of commands whose
// arguments cobra checks) from the commands' errors.
func isCobraUsage(err error) bool {
	var ue *usageError
	if errors.As(err, &ue) {
		return false
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown flag") || strings.HasPrefix(msg, "unknown shorthand flag") ||
		strings.Contains(msg, "arg(s), received") || strings.HasPrefix(msg, "invalid argument")
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// connFlags are the connection flags every command takes.
type connFlags struct {
	connectionString    string
	dpsConnectionString string
	caFile              string
	resolve             multiFlag
	configPath          string
	profile             string
	hub                 string
	verbose             bool
	attach              string // internal: "porthole ssh"'s ProxyCommand (see attach.go)
}

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.connectionString, "connection-string", "", "hub service connection string (else $PORTHOLE_CONNECTION_STRING or the config file)")
	fs.StringVar(&c.dpsConnectionString, "dps-connection-string", "", "DPS service connection string (else $PORTHOLE_DPS_CONNECTION_STRING or the config file)")
	fs.StringVar(&c.caFile, "ca", "", "PEM file of an extra CA to trust (hubsim's)")
	fs.Var(&c.resolve, "resolve", "host:port=ip:port: connect there instead (repeatable)")
	fs.StringVar(&c.configPath, "config", "", "config file (default $XDG_CONFIG_HOME/porthole/config.yaml)")
	fs.StringVar(&c.profile, "profile", "", "configuration profile: <config dir>/porthole/profiles/<name>.yaml (else $PORTHOLE_PROFILE)")
	fs.BoolVar(&c.verbose, "v", false, "debug logging")
	if !strings.HasPrefix(fs.Name(), "porthole dps") { // dps enroll has a --hub of its own
		fs.StringVar(&c.hub, "hub", "", "hub to use, by its name in the config or its host name (default: ask DPS where the device is)")
	}
}

// newFlagSet returns a flag set that reports to stderr and never exits.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("porthole "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args with flags and positional arguments in any order.
// Arguments after "--" are returned separately and not parsed.
func parse(fs *flag.FlagSet, args []string) (pos, afterDash []string, err error) {
	if len(args) == 1 && args[0] == describeMarker {
		described = fs
		return nil, nil, errDescribe
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil, usagef("help requested")
			}
			return nil, nil, &usageError{msg: err.Error()}
		}
		rest := fs.Args()
		// flag.Parse consumes a "--" terminator itself; find out whether it
		// stopped at one.
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return pos, rest, nil
		}
		if len(rest) == 0 {
			return pos, nil, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func newLogger(stderr io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}
