//go:build !porthole_minimal

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"

	"github.com/kardianos/service"

	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/agent/internal/daemon"
	"github.com/porthole-iot/porthole/agent/internal/doctor"
)

// The default build has every verb. Building with -tags porthole_minimal
// leaves out doctor and the service verbs (verbs_minimal.go, SIZE.md).
const (
	fullBuild   = true
	doctorUsage = `  doctor       check files, credentials, DNS, TLS, clock, DPS and stream
               targets, and print a checklist with fixes (-skip-lookup)
`
	serviceUsage = `  install      install the agent as a system service (with -config)
  uninstall    remove the system service
  start        start the system service
  stop         stop the system service
`
	buildNote = ""
)

// startCommand is what status suggests when no agent runs.
func startCommand(string) string {
	if onSystemd() {
		return "systemctl start " + serviceName
	}
	return "porthole-agent start (the installed service)"
}

// serviceName names the installed service (systemd unit, Windows service…).
const serviceName = "porthole-agent"

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

// runUnderServiceManager runs the daemon as a Windows service when a
// service manager (not a console) started the process; it reports whether
// it did.
func runUnderServiceManager(opts daemon.Options) (bool, error) {
	if runtime.GOOS != "windows" || service.Interactive() {
		return false, nil
	}
	return true, runWindowsService(opts)
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
	var cfg *config.Config
	if verb == "install" {
		c, _, err := config.Load(path)
		if err != nil {
			return fmt.Errorf("not installing with a config that does not load: %w", err)
		}
		cfg = c
	}
	sc, err := serviceConfig(path)
	if err != nil {
		return err
	}
	if onSystemd() {
		// A package's unit (in /lib) must not be shadowed by one in /etc,
		// and a unit install writes must be the package's hardened one.
		if err := checkPackaged(verb, unitRoot); err != nil {
			return err
		}
		if verb == "install" {
			if err := useShippedUnit(sc, cfg); err != nil {
				return err
			}
		}
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
