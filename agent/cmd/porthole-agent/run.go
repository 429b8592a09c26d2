package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/agent/internal/daemon"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version from the build info is used.
var version = ""

// configEnv names the config file when -config is not given.
const configEnv = "PORTHOLE_CONFIG"

// queryTimeout bounds the status verb.
const queryTimeout = 10 * time.Second

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// usage lists the verbs this build has (see verbs_full.go and
// verbs_minimal.go).
var usage = `usage: porthole-agent [-config FILE] <command> [flags]

Commands:
  run          run the agent in the foreground (what the service runs);
               -lookup-first: ask DPS where the device belongs before
               connecting to the cached hub
  validate     check the config file and exit
` + doctorUsage + `  status       show what the running agent is doing (-json for JSON)
  reprovision  make the running agent register with DPS again
` + serviceUsage + `  version      print the version

The config file is -config, else $PORTHOLE_CONFIG, else ` + config.DefaultPath + `.
` + buildNote

func agentVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// run is the whole program; main only maps its error to an exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	global := flag.NewFlagSet("porthole-agent", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	cfgPath := global.String("config", "", "config file")
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return nil
		}
		return usagef("%v\n%s", err, usage)
	}
	rest := global.Args()
	if len(rest) == 0 {
		return usagef("no command\n%s", usage)
	}
	verb, rest := rest[0], rest[1:]

	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(cfgPath, "config", *cfgPath, "config file")
	asJSON, lookupFirst := false, false
	if verb == "status" || verb == "reprovision" {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	}
	skipLookup := false
	if verb == "doctor" {
		fs.BoolVar(&skipLookup, "skip-lookup", false, "do not send the credential to DPS (registration status lookup)")
	}
	if verb == "run" {
		fs.BoolVar(&lookupFirst, "lookup-first", false, "with a cached assignment, ask DPS (registration status lookup) before connecting")
	}
	if err := fs.Parse(rest); err != nil {
		return usagef("%s: %v", verb, err)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected arguments %q", verb, fs.Args())
	}
	path := configPath(*cfgPath)

	switch verb {
	case "run":
		return runAgent(ctx, path, lookupFirst, stderr)
	case "validate":
		return validate(path, stdout, stderr)
	case "doctor":
		return runDoctor(ctx, path, skipLookup, stdout, stderr)
	case "status":
		return status(ctx, path, asJSON, stdout)
	case "reprovision":
		return reprovision(ctx, path, asJSON, stdout)
	case "install", "uninstall", "start", "stop":
		return control(verb, path, stdout)
	case "version":
		flavor := ""
		if !fullBuild {
			flavor = ", porthole_minimal"
		}
		fmt.Fprintf(stdout, "porthole-agent %s (%s, %s/%s%s)\n", agentVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH, flavor)
		return nil
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return usagef("unknown command %q\n%s", verb, usage)
	}
}

func configPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if env := os.Getenv(configEnv); env != "" {
		return env
	}
	return config.DefaultPath
}

func runAgent(ctx context.Context, path string, lookupFirst bool, stderr io.Writer) error {
	opts := daemon.Options{ConfigPath: path, Log: stderr, Version: agentVersion(), LookupFirst: lookupFirst}
	if handled, err := runUnderServiceManager(opts); handled {
		return err
	}
	return daemon.Run(ctx, opts)
}

func validate(path string, stdout, stderr io.Writer) error {
	cfg, warns, err := config.Load(path)
	for _, w := range warns {
		fmt.Fprintln(stderr, "warning:", w.String())
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: OK\n", cfg.File)
	return nil
}

// socketFor finds the running agent's control socket through the config.
func socketFor(path string) (string, error) {
	cfg, _, err := config.Load(path)
	if err != nil {
		return "", err
	}
	return daemon.SocketPath(cfg.StateDir), nil
}

func status(ctx context.Context, path string, asJSON bool, stdout io.Writer) error {
	sock, err := socketFor(path)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	r, err := daemon.Query(ctx, sock, daemon.VerbStatus)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, r.Status)
	}
	printStatus(stdout, r.Status)
	return nil
}

// statusLabelWidth aligns the values of printStatus (the longest label,
// "registration", plus two spaces).
const statusLabelWidth = 14

func printStatus(w io.Writer, s *daemon.Status) {
	line := func(label, value string) { fmt.Fprintf(w, "%-*s%s\n", statusLabelWidth, label, value) }
	line("agent", s.Version+", running since "+s.Started.Format(time.RFC3339))
	line("config", s.ConfigFile)
	line("registration", s.RegistrationID)
	if s.Provisioned {
		line("assigned", fmt.Sprintf("device %s on %s (%s)", s.DeviceID, s.AssignedHub, orDash(s.Substatus)))
	} else {
		line("assigned", "not yet")
	}
	conn := "no"
	if s.Connected {
		conn = "yes"
	}
	line("connected", conn+" ("+string(s.Phase)+")")
	line("streams", fmt.Sprintf("%d open, %d accepted, %d rejected", s.Streams.Open, s.Streams.Accepted, s.Streams.Rejected))
	printStreams(w, s.Streams.List, time.Now())
	if s.Failing != "" {
		// The failing line carries the last error, so the separate
		// "last error" line would repeat it.
		what := string(s.Failing)
		if !s.FailingSince.IsZero() {
			what += " since " + s.FailingSince.Format(time.RFC3339)
		}
		if s.Attempts > 0 {
			what += fmt.Sprintf(" (%d %s)", s.Attempts, plural(s.Attempts, "attempt", "attempts"))
		}
		if s.LastError != "" {
			what += ": " + s.LastError
		}
		line("failing", what)
	} else if s.LastError != "" {
		line("last error", s.LastErrorAt.Format(time.RFC3339)+": "+s.LastError)
	}
	if !s.NextAttempt.IsZero() {
		line("next attempt", s.NextAttempt.Format(time.RFC3339))
	}
	if s.Hint != "" {
		line("hint", s.Hint)
	}
	if lr := s.LastReload; lr != nil {
		what := lr.Applied
		if lr.Error != "" {
			what = "refused: " + lr.Error
		}
		line("last reload", lr.At.Format(time.RFC3339)+": "+what)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func reprovision(ctx context.Context, path string, asJSON bool, stdout io.Writer) error {
	sock, err := socketFor(path)
	if err != nil {
		return err
	}
	r, err := daemon.Query(ctx, sock, daemon.VerbReprovision)
	if err != nil {
		return fmt.Errorf("reprovision: %w", err)
	}
	if asJSON {
		return printJSON(stdout, r.Assignment)
	}
	a := r.Assignment
	fmt.Fprintf(stdout, "registered: device %s on %s (%s)\n", a.DeviceID, a.AssignedHub, orDash(a.Substatus))
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
