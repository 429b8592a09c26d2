// Package sim assembles hubsim: it builds the streaming relay, the IoT hubs,
// the DPS and the MQTT broker from a prepared server (configuration, keys,
// certificates, bound listeners) and hands them to the server as Components.
// The hubsim binary and hubsimtest both use it, so tests run exactly the
// simulator users run.
package sim

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/broker"
	"github.com/porthole-iot/porthole/hubsim/internal/dps"
	"github.com/porthole-iot/porthole/hubsim/internal/hub"
	"github.com/porthole-iot/porthole/hubsim/internal/relay"
	"github.com/porthole-iot/porthole/hubsim/internal/sas"
	"github.com/porthole-iot/porthole/hubsim/internal/server"
	"github.com/porthole-iot/porthole/hubsim/internal/simconfig"
	"github.com/porthole-iot/porthole/hubsim/internal/store"
)

// StreamLogName is the file in the state directory that receives one JSON
// line per device-stream event (the DeviceStreams resource-log shape).
const StreamLogName = "devicestreams.jsonl"

// Options tune the assembly beyond the YAML configuration: seams for tests.
type Options struct {
	// DPS, if non-nil, edits the DPS configuration before the service is
	// built (quota, faults, assign delay, clocks).
	DPS func(*dps.Config)
	// Hub, if non-nil, edits the hub set's configuration.
	Hub func(*hub.Config)
	// Relay, if non-nil, edits the relay's configuration.
	Relay func(*relay.Config)
	// StreamLog receives the DeviceStreams event lines; nil means
	// <state_dir>/devicestreams.jsonl.
	StreamLog io.Writer
}

// Sim is an assembled simulator: the components behind a server.
type Sim struct {
	Hubs   *hub.Set
	DPS    *dps.Service
	Relay  *relay.Relay
	Broker *broker.Broker
	// Store holds the hubs' and DPS's state (<state_dir>/hubsim.db, or in
	// memory with storage.mode "memory"); closed after them.
	Store *store.Store

	logFile *os.File // owned: closed by Close when we opened it
}

// Assemble builds every component for p and returns them with the
// server.Components that route to them. The caller passes the Components to
// p.Server.Start; p.Server.Close then closes everything (Components.Close).
func Assemble(p *server.Prepared, logger *slog.Logger, opts Options) (*Sim, server.Components, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg := p.Config
	s := &Sim{}

	events := opts.StreamLog
	if events == nil {
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return nil, server.Components{}, fmt.Errorf("sim: state dir: %w", err)
		}
		f, err := os.OpenFile(filepath.Join(cfg.StateDir, StreamLogName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, server.Components{}, fmt.Errorf("sim: stream event log: %w", err)
		}
		s.logFile, events = f, f
	}

	var err error
	if s.Store, err = openStore(cfg); err != nil {
		return nil, server.Components{}, s.fail(err)
	}

	httpsPort := strconv.Itoa(p.Server.HTTPSPort())
	rcfg := relay.Config{
		BaseURL: func(hubHost string) string {
			host := cfg.Streams.HostName
			if host == "" {
				host = hubHost
			}
			return "wss://" + net.JoinHostPort(host, httpsPort)
		},
		HandshakeTimeout: cfg.Streams.HandshakeTimeout,
		MaxNewPerSecond:  cfg.Streams.NewPerSecond,
		MaxConcurrent:    cfg.Streams.ConcurrentPerHub,
		Logger:           logger.With("component", "relay"),
		EventLog:         events,
	}
	if opts.Relay != nil {
		opts.Relay(&rcfg)
	}
	s.Relay = relay.New(rcfg)

	hcfg := hub.Config{
		Store:  s.Store,
		Relay:  s.Relay,
		Logger: logger.With("component", "hub"),
	}
	for _, h := range cfg.Hubs {
		hcfg.Hubs = append(hcfg.Hubs, hub.HubConfig{
			HostName: h.HostName,
			Name:     h.Name,
			Policies: policies(h.Policies),
			// Devices with "certificateAuthority" authentication may chain
			// to the sim's own CA (hubsimtest.Sim.ClientCertificate and
			// pki.IssueClient issue such certificates), as if that CA were
			// uploaded and verified on the hub.
			ClientCAs: []*x509.Certificate{p.PKI.CACert()},
		})
	}
	if opts.Hub != nil {
		opts.Hub(&hcfg)
	}
	if s.Hubs, err = hub.NewSet(hcfg); err != nil {
		return nil, server.Components{}, s.fail(fmt.Errorf("sim: hubs: %w", err))
	}

	dcfg := dps.Config{
		IDScopes:    []string{cfg.DPS.IDScope},
		ServiceHost: cfg.DPS.HostName,
		Policies:    policies(cfg.DPS.Policies),
		Hubs:        s.Hubs,
		Store:       s.Store,
		Logger:      logger.With("component", "dps"),
	}
	if opts.DPS != nil {
		opts.DPS(&dcfg)
	}
	if s.DPS, err = dps.New(dcfg); err != nil {
		return nil, server.Components{}, s.fail(fmt.Errorf("sim: dps: %w", err))
	}

	if s.Broker, err = broker.New(broker.Config{
		Logger:        logger.With("component", "broker"),
		Personalities: []broker.Personality{s.Hubs, s.DPS.Personality()},
	}); err != nil {
		return nil, server.Components{}, s.fail(fmt.Errorf("sim: broker: %w", err))
	}

	comps := server.Components{
		Broker:     s.Broker,
		Relay:      s.Relay,
		Hub:        s.Hubs,
		DPSDevice:  s.DPS.DeviceHandler(),
		DPSService: s.DPS.ServiceHandler(),
		Admin:      s.admin(),
		Close:      s.closeComponents,
	}
	return s, comps, nil
}

// admin is hubsim's own API: the hubs' admin routes plus the streaming
// endpoint lookup (the equivalent of `az iot hub devicestream show`).
func (s *Sim) admin() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hubsim/hubs/{host}/devicestream", func(w http.ResponseWriter, r *http.Request) {
		host := r.PathValue("host")
		if _, ok := s.Hubs.Hub(host); !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"Message":"ErrorCode:IotHubNotFound;no hub %s in this simulator"}`, strconv.Quote(host))
			return
		}
		endpoints := s.Relay.Endpoints(host)
		if endpoints == nil {
			endpoints = []string{}
		}
		writeJSON(w, map[string]any{"streamingEndpoints": endpoints})
	})
	mux.HandleFunc("GET /hubsim/dps/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.DPS.Stats())
	})
	mux.Handle("/hubsim/", s.Hubs.AdminHandler())
	return mux
}

// closeComponents stops the relay, the DPS and the hubs (the server closes
// the broker itself) and the event log, joining their errors.
func (s *Sim) closeComponents() error {
	var errs []error
	if s.Relay != nil {
		errs = append(errs, s.Relay.Close())
	}
	if s.DPS != nil {
		errs = append(errs, s.DPS.Close())
	}
	if s.Hubs != nil {
		errs = append(errs, s.Hubs.Close())
	}
	if s.logFile != nil {
		errs = append(errs, s.logFile.Close())
		s.logFile = nil
	}
	// Last: closing the hubs disconnects devices, which is written.
	if s.Store != nil {
		errs = append(errs, s.Store.Close())
	}
	return errors.Join(errs...)
}

// fail releases what a half-done assembly built and returns err.
func (s *Sim) fail(err error) error {
	if s.Broker != nil {
		err = errors.Join(err, s.Broker.Close())
	}
	return errors.Join(err, s.closeComponents())
}

// openStore opens the state database the configuration asks for.
func openStore(cfg *simconfig.Config) (*store.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if cfg.Storage.Mode == simconfig.StorageMemory {
		return store.OpenMemory(ctx)
	}
	st, err := store.Open(ctx, filepath.Join(cfg.StateDir, store.FileName), store.Options{Durable: cfg.Storage.Durable})
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	return st, nil
}

func policies(in []simconfig.Policy) []sas.Policy {
	out := make([]sas.Policy, 0, len(in))
	for _, p := range in {
		out = append(out, sas.Policy{Name: p.Name, PrimaryKey: p.PrimaryKey, SecondaryKey: p.SecondaryKey, Rights: p.Rights})
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away: nothing to tell it
}
