package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/porthole-iot/porthole/hubsim/internal/server"
	"github.com/porthole-iot/porthole/hubsim/internal/sim"
	"github.com/porthole-iot/porthole/hubsim/internal/simconfig"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "hubsim:", err)
		os.Exit(1)
	}
}

// errUsage marks a command-line error (already reported by the flag package).
var errUsage = errors.New("usage error")

// run is hubsim: it serves until ctx is done or a listener fails.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "fleet" {
		return runFleet(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("hubsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML configuration file (default: built-in defaults)")
	listen := fs.String("listen", "", "comma-separated IP addresses to listen on (overrides config)")
	httpsPort := fs.Int("https-port", 0, "HTTPS/WSS port, 0 = pick a free one (overrides config; default 443)")
	mqttPort := fs.Int("mqtt-port", 0, "MQTT/TLS port, 0 = pick a free one (overrides config; default 8883)")
	stateDir := fs.String("state-dir", "", "directory for keys, the CA and the state database (overrides config)")
	statusFile := fs.String("status-file", "", "write endpoints and connection strings here as JSON (0600) once serving")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (overrides config)")
	pprofAddr := fs.String("pprof", "", "serve Go runtime profiles (/debug/pprof/) on this loopback HOST:PORT (off by default)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hubsim: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		fs.Usage()
		return errUsage
	}

	cfg := simconfig.Default()
	if *configPath != "" {
		var err error
		if cfg, err = simconfig.Load(*configPath); err != nil {
			return err
		}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "listen":
			cfg.Listen = splitList(*listen)
		case "https-port":
			cfg.Ports.HTTPS = *httpsPort
		case "mqtt-port":
			cfg.Ports.MQTT = *mqttPort
		case "state-dir":
			cfg.StateDir = *stateDir
		case "log-level":
			cfg.Log.Level = *logLevel
		}
	})
	if err := cfg.Validate(); err != nil {
		return err
	}
	logger, err := cfg.Logger(stderr)
	if err != nil {
		return err
	}

	var pprofBound string
	if *pprofAddr != "" {
		bound, stopPprof, err := servePprof(*pprofAddr, logger)
		if err != nil {
			return err
		}
		pprofBound = bound
		defer func() {
			if err := stopPprof(); err != nil {
				logger.Warn("stopping the pprof server failed", "err", err)
			}
		}()
	}

	p, err := server.Prepare(cfg, logger)
	if err != nil {
		return err
	}
	_, comps, err := sim.Assemble(p, logger, sim.Options{})
	if err != nil {
		return errors.Join(err, p.Server.Close())
	}
	if err := p.Server.Start(comps); err != nil {
		return errors.Join(err, p.Server.Close())
	}

	st := p.Status()
	st.Pprof = pprofBound
	if *statusFile != "" {
		// The client files first: the status file says hubsim is ready.
		st.ClientFiles, err = p.WriteClientFiles(filepath.Dir(*statusFile))
		if err != nil {
			return errors.Join(err, p.Server.Close())
		}
		if err := server.WriteStatusFile(*statusFile, st); err != nil {
			return errors.Join(err, p.Server.Close())
		}
	}
	if err := st.WriteBanner(stdout); err != nil {
		logger.Warn("printing banner failed", "err", err)
	}

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("hubsim shutting down")
	case <-p.Server.Done():
		serveErr = p.Server.Err()
	}
	closeErr := p.Server.Close()
	if *statusFile != "" {
		// A stale file would describe a process that is gone.
		for _, f := range append(st.ClientFiles, *statusFile) {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				logger.Warn("removing status file failed", "file", f, "err", err)
			}
		}
	}
	return errors.Join(serveErr, closeErr)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
