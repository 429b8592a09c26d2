package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"text/tabwriter"
	"time"

	"github.com/kardianos/service"

	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/agent/internal/daemon"
	"github.com/porthole-iot/porthole/agent/internal/doctor"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version from the build info is used.
var version = ""

// serviceName names the installed service (systemd unit, Windows service…).
const serviceName = "porthole-agent"

// configEnv names the config file when -config is not given.
const configEnv = "PORTHOLE_CONFIG"

// queryTimeout bounds the status verb.
const queryTimeout = 10 * time.Second

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

const usage = `usage: porthole-agent [-config FILE] <command> [flags]

Commands:
  run          run the agent in the foreground (what the service runs);
               -lookup-first: ask DPS where the device belongs before
               connecting to the cached hub
  validate     check the config file and exit
  doctor       check files, credentials, DNS, TLS, clock, DPS and stream
               targets, and print a checklist with fixes (-skip-lookup)
  status       show what the running agent is doing (-json for JSON)
  reprovision  make the running agent register with DPS again
  install      install the agent as a system service (with -config)
  uninstall    remove the system service
  start        start the system service
  stop         stop the system service
  version      print the version

The config file is -config, else $PORTHOLE_CONFIG, else ` + config.DefaultPath + `.
`

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
		fmt.Fprintf(stdout, "porthole-agent %s (%s, %s/%s)\n", agentVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
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
	if runtime.GOOS == "windows" && !service.Interactive() {
		return runWindowsService(opts)
	}
	return daemon.Run(ctx, opts)
}

// errDoctor is returned when doctor found a failing check (exit status 1).
var errDoctor = errors.New("doctor found problems (see the checklist above)")

func runDoctor(ctx context.Context, path string, skipLookup bool, stdout, stderr io.Writer) error {
	cfg, warns, err := config.Load(path)
	for _, w := range warns {
		fmt.Fprintln(stderr, "warning:", w.String())
	}
	if err != nil {
		return err
	}
	rep := doctor.Run(ctx, cfg, doctor.Options{SkipLookup: skipLookup})
	if err := rep.Write(stdout); err != nil {
		return err
	}
	if !rep.OK() {
		return errDoctor
	}
	return nil
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

func printStatus(w io.Writer, s *daemon.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "agent\t%s, running since %s\n", s.Version, s.Started.Format(time.RFC3339))
	fmt.Fprintf(tw, "config\t%s\n", s.ConfigFile)
	fmt.Fprintf(tw, "registration\t%s\n", s.RegistrationID)
	if s.Provisioned {
		fmt.Fprintf(tw, "assigned\tdevice %s on %s (%s)\n", s.DeviceID, s.AssignedHub, orDash(s.Substatus))
	} else {
		fmt.Fprintf(tw, "assigned\tnot yet\n")
	}
	conn := "no"
	if s.Connected {
		conn = "yes"
	}
	fmt.Fprintf(tw, "connected\t%s (%s)\n", conn, s.Phase)
	fmt.Fprintf(tw, "streams\t%d open, %d accepted, %d rejected\n", s.Streams.Open, s.Streams.Accepted, s.Streams.Rejected)
	if s.LastError != "" {
		fmt.Fprintf(tw, "last error\t%s: %s\n", s.LastErrorAt.Format(time.RFC3339), s.LastError)
	}
	if lr := s.LastReload; lr != nil {
		what := lr.Applied
		if lr.Error != "" {
			what = "refused: " + lr.Error
		}
		fmt.Fprintf(tw, "last reload\t%s: %s\n", lr.At.Format(time.RFC3339), what)
	}
	tw.Flush()
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

// serviceConfig describes the installed service: it runs this executable
// with "run" and the config path made absolute.
func serviceConfig(path string) (*service.Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return &service.Config{
		Name:        serviceName,
		DisplayName: "porthole agent",
		Description: "SSH into this device through Azure IoT Hub device streams.",
		Arguments:   []string{"-config", abs, "run"},
		Dependencies: []string{
			"After=network-online.target",
			"Wants=network-online.target",
		},
	}, nil
}

func control(verb, path string, stdout io.Writer) error {
	if verb == "install" {
		if _, _, err := config.Load(path); err != nil {
			return fmt.Errorf("not installing with a config that does not load: %w", err)
		}
	}
	sc, err := serviceConfig(path)
	if err != nil {
		return err
	}
	s, err := service.New(&program{}, sc)
	if err != nil {
		return err
	}
	if err := service.Control(s, verb); err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	msg := map[string]string{"install": "installed", "uninstall": "uninstalled", "start": "started", "stop": "stopped"}[verb]
	fmt.Fprintf(stdout, "service %s %s\n", serviceName, msg)
	if verb == "install" {
		fmt.Fprintf(stdout, "it runs with the config %s\n", sc.Arguments[1])
	}
	return nil
}

// program runs the daemon under a service manager that does not speak
// signals (Windows).
type program struct {
	opts   daemon.Options
	cancel context.CancelFunc
	done   chan error // Run's result; owned by Start's goroutine
}

func (p *program) Start(service.Service) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan error, 1)
	go func() { p.done <- daemon.Run(ctx, p.opts) }() // owned by p: Stop waits
	return nil
}

func (p *program) Stop(service.Service) error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	return <-p.done
}

func runWindowsService(opts daemon.Options) error {
	sc, err := serviceConfig(opts.ConfigPath)
	if err != nil {
		return err
	}
	p := &program{opts: opts}
	s, err := service.New(p, sc)
	if err != nil {
		return err
	}
	return s.Run()
}
