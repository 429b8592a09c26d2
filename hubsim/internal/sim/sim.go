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
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/admin"
	"github.com/porthole-iot/porthole/hubsim/internal/broker"
	"github.com/porthole-iot/porthole/hubsim/internal/dps"
	"github.com/porthole-iot/porthole/hubsim/internal/hub"
	"github.com/porthole-iot/porthole/hubsim/internal/metrics"
	"github.com/porthole-iot/porthole/hubsim/internal/query"
	"github.com/porthole-iot/porthole/hubsim/internal/relay"
	"github.com/porthole-iot/porthole/hubsim/internal/sas"
	"github.com/porthole-iot/porthole/hubsim/internal/server"
	"github.com/porthole-iot/porthole/hubsim/internal/simconfig"
	"github.com/porthole-iot/porthole/hubsim/internal/store"
	"github.com/porthole-iot/porthole/hubsim/internal/ui"
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
	// Faults are the declarative faults (admin API, hubsimtest) the hub
	// and relay fault hooks consult.
	Faults *admin.Faults
	// Store holds the hubs' and DPS's state (<state_dir>/hubsim.db, or in
	// memory with storage.mode "memory"); closed after them.
	Store *store.Store
	// UI is the browser dashboard under /hubsim/ui/, on the admin API's
	// credential.
	UI *ui.UI

	logFile   *os.File    // owned: closed by Close when we opened it
	streamLog *ui.LogRing // the last DeviceStreams log lines, for the dashboard
}

// Assemble builds every component for p and returns them with the
// server.Components that route to them. The caller passes the Components to
// p.Server.Start; p.Server.Close then closes everything (Components.Close).
func Assemble(p *server.Prepared, logger *slog.Logger, opts Options) (*Sim, server.Components, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg := p.Config
	s := &Sim{Faults: admin.NewFaults(), streamLog: ui.NewLogRing(200)}

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
	if !store.Available {
		// No SQLite for this platform (linux/mips, mipsle): registries,
		// twins and DPS records live in memory only, and twin queries are
		// refused (see store.Available).
		logger.Warn("this build of hubsim has no SQLite (GOARCH " + runtime.GOARCH + "): state is kept in memory only and twin queries are not available")
	} else if s.Store, err = openStore(cfg); err != nil {
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
		EventLog:         io.MultiWriter(events, s.streamLog),
		Faults:           relayFaults(s.Faults),
	}
	if opts.Relay != nil {
		opts.Relay(&rcfg)
	}
	s.Relay = relay.New(rcfg)

	hcfg := hub.Config{
		Store:             s.Store,
		Relay:             s.Relay,
		Faults:            hubFaults(s.Faults),
		Logger:            logger.With("component", "hub"),
		ConnectsPerSecond: cfg.Limits.DeviceConnectionsPerSecond,
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
		Broker: s.Broker,
		Relay:  s.Relay,
		Hub:    s.Hubs,
		DPS:    s.DPS.HTTP(),
		Close:  s.closeComponents,
	}
	s.Faults.OnAdd = s.dropNow
	auth := adminAuth(p)
	api, err := s.admin(p, auth, logger)
	if err != nil {
		return nil, server.Components{}, s.fail(err)
	}
	if s.UI, err = ui.New(ui.Config{
		Hubs: adminHubs{s.Hubs}, DPS: adminDPS{s.DPS}, Faults: s.Faults,
		Devices: uiDevices{s.Hubs}, Streams: uiStreams{s.Relay, s.streamLog},
		Provisioning: uiDPS{s.DPS, dcfg.Quota},
		Auth:         auth, Logger: logger.With("component", "ui"),
	}); err != nil {
		return nil, server.Components{}, s.fail(err)
	}
	s.UI.Start()
	comps.Admin = adminAndUI{api, s.UI}
	return s, comps, nil
}

// adminAuth is who may use the admin API and the dashboard: the admin
// token and the owner policies of the hubs and the DPS.
func adminAuth(p *server.Prepared) *admin.Authorizer {
	auth := &admin.Authorizer{Token: p.AdminToken}
	for _, h := range p.Config.Hubs {
		auth.Owners = append(auth.Owners, admin.Owner{Resource: h.HostName, Policies: policies(h.Policies),
			Rights: []string{sas.RightRegistryRead, sas.RightRegistryWrite, sas.RightServiceConnect, sas.RightDeviceConnect}})
	}
	auth.Owners = append(auth.Owners, admin.Owner{Resource: p.Config.DPS.HostName, Policies: policies(p.Config.DPS.Policies),
		Rights: []string{sas.RightServiceConfig, sas.RightEnrollmentRead, sas.RightEnrollmentWrite,
			sas.RightRegistrationStatusRead, sas.RightRegistrationStatusWrite}})
	return auth
}

// admin builds hubsim's own API (/hubsim/…, /metrics) over the components.
func (s *Sim) admin(p *server.Prepared, auth *admin.Authorizer, logger *slog.Logger) (*admin.API, error) {
	return admin.New(admin.Config{
		Hubs:    adminHubs{s.Hubs},
		DPS:     adminDPS{s.DPS},
		Relay:   adminRelay{s.Relay},
		Faults:  s.Faults,
		Metrics: metrics.Handler(s.metricSources()),
		Unhandled: func() any {
			return unhandledReport{Requests: nonNil(p.Server.Unhandled()), Hubs: nonNil(s.Hubs.Unhandled()), DPS: nonNil(s.DPS.Unhandled())}
		},
		Auth:   auth,
		Logger: logger.With("component", "admin"),
	})
}

// hubFaults points the hubs' fault hooks at the declarative faults.
func hubFaults(fs *admin.Faults) *hub.Faults {
	return &hub.Faults{
		RefuseConnect: func(h, dev string) (byte, bool) {
			f, ok := fs.Match(admin.KindRefuseConnect, h, dev)
			return byte(f.ConnackCode), ok
		},
		DropConnection: func(h, dev string) (time.Duration, bool) {
			f, ok := fs.Match(admin.KindDropConnection, h, dev)
			return time.Duration(f.After), ok
		},
		ThrottleREST: func(h string, r *http.Request) (time.Duration, bool) {
			f, ok := fs.Match(admin.KindThrottleREST, h, r.PathValue("id"))
			return time.Duration(f.RetryAfter), ok
		},
		StreamRequest: func(h, dev, name string) (time.Duration, bool) {
			var delay time.Duration
			if f, ok := fs.Match(admin.KindDelayStream, h, dev); ok {
				delay = time.Duration(f.Delay)
			}
			_, reject := fs.Match(admin.KindRejectStream, h, dev)
			return delay, reject
		},
		AckDelay: func(h, dev string) time.Duration {
			f, _ := fs.Match(admin.KindDelayAck, h, dev)
			return time.Duration(f.Delay)
		},
	}
}

// relayFaults points the relay's fault hooks at the declarative faults.
func relayFaults(fs *admin.Faults) *relay.Faults {
	return &relay.Faults{
		Cut: func(spec relay.StreamSpec) (int64, bool) {
			f, ok := fs.Match(admin.KindCutStream, spec.Hub, spec.DeviceID)
			return f.AfterBytes, ok
		},
		Stall: func(spec relay.StreamSpec) (string, bool) {
			f, ok := fs.Match(admin.KindStallStream, spec.Hub, spec.DeviceID)
			return f.Side, ok
		},
	}
}

// dropNow applies a new drop-connection fault to the connections that
// exist already; the hub hook takes care of later ones.
func (s *Sim) dropNow(f admin.Fault) {
	if f.Kind != admin.KindDropConnection {
		return
	}
	for _, h := range s.Hubs.Hubs() {
		if f.Hub != "" && !strings.EqualFold(f.Hub, h.HostName()) {
			continue
		}
		if f.Device != "" {
			h.Disconnect(f.Device, "")
			continue
		}
		for _, d := range h.ListDevices(context.Background()) {
			h.Disconnect(d.DeviceID, "")
		}
	}
}

// metricSources reads the components' counters for /metrics.
func (s *Sim) metricSources() metrics.Sources {
	return metrics.Sources{
		Hubs: func() []metrics.HubSample {
			var out []metrics.HubSample
			for _, h := range s.Hubs.Hubs() {
				st, c := h.Stats(), h.Counters()
				out = append(out, metrics.HubSample{Hub: st.HostName, Devices: st.Devices, Connected: st.Connected,
					Connects: c.Connects, Disconnects: c.Disconnects, MessagesIn: c.MessagesIn, MessagesOut: c.MessagesOut,
					TwinGets: c.TwinGets, TwinPatches: c.TwinPatches, MethodCalls: c.MethodCalls,
					C2DQueued: c.C2DSent, C2DDelivered: c.C2DDone, Throttled: c.Throttled})
			}
			return out
		},
		Streams: func() []metrics.StreamSample {
			byHub := s.Relay.HubStats()
			var out []metrics.StreamSample
			for _, h := range s.Hubs.Hubs() {
				st := byHub[h.HostName()]
				out = append(out, metrics.StreamSample{Hub: h.HostName(), Open: int64(st.Pending + st.Active), Total: st.Total,
					BytesDeviceToService: st.BytesDeviceToService, BytesServiceToDevice: st.BytesServiceToDevice})
			}
			return out
		},
		DPS: func() metrics.DPSSample {
			st := s.DPS.Stats()
			return metrics.DPSSample{Registrations: st.Registrations, Lookups: st.Lookups, Polls: st.Polls,
				Outcomes: st.RegistrationOutcomes, ThrottledQuota: st.Throttled, ThrottledFault: st.FaultThrottle}
		},
	}
}

// adminHubs feeds the admin API from the hub set.
type adminHubs struct{ set *hub.Set }

func (a adminHubs) Stats() any {
	out := []hub.HubStats{}
	for _, h := range a.set.Hubs() {
		out = append(out, h.Stats())
	}
	return out
}

func (a adminHubs) Has(host string) bool { _, ok := a.set.Hub(host); return ok }

func (a adminHubs) ServeEvents(host string, w http.ResponseWriter, r *http.Request) {
	if h, ok := a.set.Hub(host); ok {
		h.ServeEvents(w, r)
	}
}

func (a adminHubs) SendC2D(ctx context.Context, host, id string, m admin.C2D) error {
	h, ok := a.set.Hub(host)
	if !ok {
		return hub.ErrHubNotFound
	}
	return h.SendC2D(ctx, id, hub.C2DMessage{Body: m.Body, Properties: m.Properties, ContentType: m.ContentType})
}

func (a adminHubs) Disconnect(host, id string) bool {
	h, ok := a.set.Hub(host)
	return ok && h.Disconnect(id, "")
}

func (a adminHubs) WriteError(w http.ResponseWriter, err error) { a.set.WriteError(w, err) }

// unhandledReport is GET /hubsim/unhandled: what hubsim received and did
// not serve, by who noticed it, oldest first.
type unhandledReport struct {
	Requests []string        `json:"requests"` // HTTP requests no route takes, MQTT without a broker
	Hubs     []hub.Unhandled `json:"hubs"`     // hub REST paths, topics and queries
	DPS      []string        `json:"dps"`      // DPS device and service API requests
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// adminDPS feeds the admin API from the DPS.
type adminDPS struct{ dps *dps.Service }

func (a adminDPS) Stats() any { return a.dps.Stats() }

// adminRelay feeds the admin API from the streaming endpoint.
type adminRelay struct{ r *relay.Relay }

func (a adminRelay) Endpoints(host string) []string { return a.r.Endpoints(host) }

// Streams lists the live streams of the hub with this host name (the
// admin API matches host names case-insensitively, like the hubs).
func (a adminRelay) Streams(host string) []admin.Stream {
	var out []admin.Stream
	for _, o := range a.r.Open() {
		if !strings.EqualFold(o.Hub, host) {
			continue
		}
		st := admin.Stream{ID: o.ID, DeviceID: o.DeviceID, ModuleID: o.ModuleID, Name: o.Name, Policy: o.Policy,
			Created: o.Created, BytesToDevice: o.BytesToDevice, BytesToService: o.BytesToService}
		if !o.Connected.IsZero() {
			c := o.Connected
			st.Connected = &c
		}
		out = append(out, st)
	}
	return out
}

// closeComponents stops the relay, the DPS and the hubs (the server closes
// the broker itself) and the event log, joining their errors.
func (s *Sim) closeComponents() error {
	var errs []error
	if s.UI != nil {
		errs = append(errs, s.UI.Close())
	}
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

// adminAndUI puts the admin API and the dashboard on hubsim's mux.
type adminAndUI struct {
	*admin.API
	ui *ui.UI
}

func (a adminAndUI) RegisterRoutes(mux *http.ServeMux) {
	a.API.RegisterRoutes(mux)
	a.ui.RegisterRoutes(mux)
}

// uiDevices feeds the dashboard's device pages from the hub set.
type uiDevices struct{ set *hub.Set }

func (d uiDevices) hub(host string) (*hub.Hub, error) {
	h, ok := d.set.Hub(host)
	if !ok {
		return nil, hub.ErrHubNotFound
	}
	return h, nil
}

func (d uiDevices) List(ctx context.Context, host, match string, limit int) ([]ui.Device, int, error) {
	h, err := d.hub(host)
	if err != nil {
		return nil, 0, err
	}
	var out []ui.Device
	n := 0
	for _, dev := range h.ListDevices(ctx) {
		if match != "" && !strings.Contains(dev.DeviceID, match) {
			continue
		}
		n++
		if len(out) < limit {
			out = append(out, ui.Device{ID: dev.DeviceID, Enabled: dev.Status != hub.StatusDisabled,
				Connected: dev.ConnectionState == "Connected", LastActivity: dev.LastActivityTime})
		}
	}
	return out, n, nil
}

func (d uiDevices) Twin(ctx context.Context, host, id string) (json.RawMessage, error) {
	h, err := d.hub(host)
	if err != nil {
		return nil, err
	}
	t, err := h.GetTwin(ctx, id, "")
	if err != nil {
		return nil, err
	}
	return json.Marshal(t)
}

func (d uiDevices) UpdateDesired(ctx context.Context, host, id string, patch map[string]any) error {
	h, err := d.hub(host)
	if err != nil {
		return err
	}
	_, err = h.UpdateTwin(ctx, id, "", hub.TwinPatch{Desired: patch}, "")
	return err
}

func (d uiDevices) SetEnabled(ctx context.Context, host, id string, enabled bool) error {
	h, err := d.hub(host)
	if err != nil {
		return err
	}
	st := hub.StatusDisabled
	if enabled {
		st = hub.StatusEnabled
	}
	return h.SetStatus(ctx, id, st)
}

func (d uiDevices) Query(ctx context.Context, host, text string, limit int) ([]json.RawMessage, error) {
	res, err := d.set.QueryTwins(ctx, host, text, query.Page{MaxItems: limit})
	if err != nil {
		return nil, err
	}
	return res.Items, nil
}

func (d uiDevices) InvokeMethod(ctx context.Context, host, id, method string, payload json.RawMessage, timeout time.Duration) (int, json.RawMessage, error) {
	h, err := d.hub(host)
	if err != nil {
		return 0, nil, err
	}
	res, err := h.InvokeMethod(ctx, id, "", hub.MethodRequest{MethodName: method, Payload: payload,
		ResponseTimeoutInSeconds: int(timeout / time.Second)})
	if err != nil {
		return 0, nil, err
	}
	return res.Status, res.Payload, nil
}

// uiDPS feeds the dashboard's DPS page.
type uiDPS struct {
	dps   *dps.Service
	quota dps.Quota
}

func (d uiDPS) Enrollments() any      { return d.dps.Enrollments() }
func (d uiDPS) EnrollmentGroups() any { return d.dps.EnrollmentGroups() }
func (d uiDPS) Registrations() any    { return d.dps.RegistrationStates("") }
func (d uiDPS) Quota() (int, time.Duration) {
	w := d.quota.Window
	if w <= 0 {
		w = time.Minute
	}
	return d.quota.Limit, w
}

// uiStreams feeds the dashboard's stream counters from the relay.
type uiStreams struct {
	r   *relay.Relay
	log *ui.LogRing
}

func (s uiStreams) History() [][]byte { return s.log.Lines() }

func (s uiStreams) Open() []ui.OpenStream {
	var out []ui.OpenStream
	for _, o := range s.r.Open() {
		out = append(out, ui.OpenStream{Hub: o.Hub, DeviceID: o.DeviceID, ModuleID: o.ModuleID, Name: o.Name, Policy: o.Policy,
			Created: o.Created, Connected: o.Connected, BytesToDevice: o.BytesToDevice, BytesToService: o.BytesToService})
	}
	return out
}

func (s uiStreams) StreamStats() ui.StreamStats {
	var out ui.StreamStats
	for _, st := range s.r.HubStats() {
		out.Open += int64(st.Pending + st.Active)
		out.Total += st.Total
		out.BytesDeviceToService += st.BytesDeviceToService
		out.BytesServiceToDevice += st.BytesServiceToDevice
	}
	return out
}
