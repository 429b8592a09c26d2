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
	"strings"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/agent/internal/daemon"
	"github.com/porthole-iot/porthole/agent/internal/metrics"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version from the build info is used.
var version = ""

// configEnv names the config file when -config is not given.
const configEnv = "PORTHOLE_CONFIG"

// queryTimeout bounds the status verb.
const queryTimeout = 10 * time.Second

// exitError ends the program with code after the verb printed why (main
// prints nothing more).
type exitError struct {
	code int
	msg  string // for callers of run (tests); not printed by main
}

func (e *exitError) Error() string { return e.msg }

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
  metrics      print the running agent's metrics (Prometheus text format)
  reprovision  make the running agent register with DPS again
` + serviceUsage + `  version      print the version

The config file is -config, else $PORTHOLE_CONFIG, else ` + config.DefaultPath + `.
` + buildNote

// verbHelp is each verb's -h text (its flags follow). Verbs a build does
// not have answer -h with the usage error that says so.
var verbHelp = map[string]string{
	"run":         "Run the agent in the foreground (what the service runs).",
	"validate":    "Check the config file: print every problem, one a line, then \"N problems\" or \"OK\".",
	"doctor":      "Check files, credentials, DNS, TLS, clock, DPS and stream targets; print a checklist with fixes.",
	"status":      "Show what the running agent is doing (works with a broken config file).",
	"metrics":     "Print the running agent's metrics in the Prometheus text format (porthole_agent_up 0 when it is not running).",
	"reprovision": "Make the running agent register with DPS again.",
	"install":     "Install the agent as a system service.",
	"uninstall":   "Remove the system service.",
	"start":       "Start the system service.",
	"stop":        "Stop the system service.",
	"version":     "Print the version.",
}

// printVerbHelp prints verb's -h: what it does and its flags.
func printVerbHelp(w io.Writer, verb string, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: porthole-agent [-config FILE] %s [flags]\n\n%s\n\nFlags:\n", verb, verbHelp[verb])
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

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
		if errors.Is(err, flag.ErrHelp) {
			if _, known := verbHelp[verb]; known {
				printVerbHelp(stdout, verb, fs)
				return nil
			}
		}
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
	case "metrics":
		return printMetrics(ctx, path, stdout)
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

// validate prints every problem of the config file, one a line, and a
// verdict: "OK" or "N problems" (exit status 1). Besides what Load checks,
// it refuses the sample's placeholder values and a file other users can
// write to.
func validate(path string, stdout, stderr io.Writer) error {
	cfg, warns, err := config.Load(path)
	for _, w := range warns {
		fmt.Fprintln(stderr, "warning:", w.String())
	}
	var problems []string
	if fe := config.FileModeProblem(path); fe != nil {
		problems = append(problems, fe.Error())
	}
	switch fes := config.FieldErrors(err); {
	case err != nil && len(fes) == 0:
		problems = append(problems, err.Error())
	case err != nil:
		for _, fe := range fes {
			problems = append(problems, fe.Error())
		}
	default:
		for _, fe := range cfg.SampleValues() {
			problems = append(problems, fe.Error())
		}
	}
	if len(problems) == 0 {
		fmt.Fprintf(stdout, "%s: OK\n", cfg.File)
		return nil
	}
	for _, p := range problems {
		fmt.Fprintln(stdout, p)
	}
	verdict := fmt.Sprintf("%d %s", len(problems), plural(len(problems), "problem", "problems"))
	fmt.Fprintln(stdout, verdict)
	return &exitError{code: 1, msg: strings.Join(append(problems, verdict), "\n")}
}

// socketFor finds the running agent's control socket through the config.
func socketFor(path string) (string, error) {
	cfg, _, err := config.Load(path)
	if err != nil {
		return "", err
	}
	return daemon.SocketPath(cfg.StateDir), nil
}

// exitNotRunning is status's exit code when no agent runs (LSB's "program
// is not running", what init scripts' status verbs return).
const exitNotRunning = 3

// statusJSON is status -json: the agent's status, plus what the command
// found out itself.
type statusJSON struct {
	Running bool `json:"running"`
	// ConfigError is why the config file on disk does not load (the
	// running agent keeps the config it loaded).
	ConfigError string `json:"configError,omitempty"`
	*daemon.Status
}

// status asks the running agent how it is doing. It works with a config
// file that no longer loads (it then finds the control socket through the
// state_dir the file names, and shows the config error on its own line),
// and says how to start the agent when none runs.
func status(ctx context.Context, path string, asJSON bool, stdout io.Writer) error {
	sock, cfgErr := agentSocket(path)
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	r, err := daemon.Query(ctx, sock, daemon.VerbStatus)
	if errors.Is(err, daemon.ErrNotRunning) {
		msg := "not running; start it with " + startCommand(path)
		if asJSON {
			if err := printJSON(stdout, statusJSON{ConfigError: cfgErr}); err != nil {
				return err
			}
		} else {
			line(stdout, "agent", msg)
			if cfgErr != "" {
				line(stdout, "config error", cfgErr)
			}
		}
		return &exitError{code: exitNotRunning, msg: msg}
	}
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, statusJSON{Running: true, ConfigError: cfgErr, Status: r.Status})
	}
	printStatus(stdout, r.Status, time.Now(), cfgErr)
	return nil
}

// agentSocket finds the running agent's control socket through the config
// file, also when the file no longer loads (then through the state_dir it
// names); cfgErr is the file's error, if any.
func agentSocket(path string) (sock, cfgErr string) {
	cfg, _, err := config.Load(path)
	if err != nil {
		return daemon.SocketPath(config.StateDirOf(path)), configErrorLine(err)
	}
	return daemon.SocketPath(cfg.StateDir), ""
}

// printMetrics prints the running agent's metrics in the Prometheus text
// format; with no agent running, porthole_agent_up 0 (and exit status 3,
// as status).
func printMetrics(ctx context.Context, path string, stdout io.Writer) error {
	sock, _ := agentSocket(path)
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	r, err := daemon.Query(ctx, sock, daemon.VerbStatus)
	if errors.Is(err, daemon.ErrNotRunning) {
		if err := metrics.Write(stdout, daemon.MetricsSnapshot(nil, agentVersion(), time.Now())); err != nil {
			return err
		}
		return &exitError{code: exitNotRunning, msg: "not running"}
	}
	if err != nil {
		return err
	}
	return metrics.Write(stdout, daemon.MetricsSnapshot(r.Status, agentVersion(), time.Now()))
}

// configErrorLine is the first problem of a config that does not load,
// with a count of the others.
func configErrorLine(err error) string {
	fes := config.FieldErrors(err)
	if len(fes) == 0 {
		return err.Error()
	}
	s := fes[0].Error()
	if n := len(fes) - 1; n > 0 {
		s += fmt.Sprintf(" (and %d more %s; porthole-agent validate lists them)", n, plural(n, "problem", "problems"))
	}
	return s
}

// statusLabelWidth aligns the values of printStatus (the longest label,
// "registration", plus two spaces).
const statusLabelWidth = 14

func line(w io.Writer, label, value string) {
	fmt.Fprintf(w, "%-*s%s\n", statusLabelWidth, label, value)
}

// printStatus prints s as seen at now (the failure's duration, the time to
// the next attempt); cfgErr is the config file's error, if any.
func printStatus(w io.Writer, s *daemon.Status, now time.Time, cfgErr string) {
	line := func(label, value string) { line(w, label, value) }
	line("agent", s.Version+", running since "+s.Started.Format(time.RFC3339)+" (up "+since(now, s.Started)+")")
	line("config", s.ConfigFile)
	if cfgErr != "" {
		line("config error", cfgErr+" — the agent runs with the config it loaded before")
	}
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
			what += " for " + since(now, s.FailingSince) + " (since " + s.FailingSince.Format(time.RFC3339)
			if s.Attempts > 0 {
				what += fmt.Sprintf(", %d %s", s.Attempts, plural(s.Attempts, "attempt", "attempts"))
			}
			what += ")"
		} else if s.Attempts > 0 {
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
		if d := s.NextAttempt.Sub(now); d > 0 {
			line("next attempt", "in "+roundDuration(d).String()+" ("+s.NextAttempt.Format(time.RFC3339)+")")
		} else {
			line("next attempt", "now")
		}
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

// since is the time from t to now, rounded for people.
func since(now, t time.Time) string { return roundDuration(now.Sub(t)).String() }

// roundDuration rounds to seconds (to 0.1 s under 10 s).
func roundDuration(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
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
