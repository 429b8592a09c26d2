package hubsimtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/porthole-iot/porthole/hubsim/internal/pki"
	"github.com/porthole-iot/porthole/hubsim/internal/server"
	"github.com/porthole-iot/porthole/hubsim/internal/sim"
	"github.com/porthole-iot/porthole/hubsim/internal/simconfig"
)

// Assembler builds the simulator's components once the listeners are bound
// (p.Server knows the ports, p.Config holds keys). New uses the full hubsim
// assembly (hubs, DPS, streaming relay, broker) unless WithAssembler
// replaces it, e.g. to test the frame alone.
type Assembler func(p *server.Prepared, logger *slog.Logger) (server.Components, error)

type options struct {
	configure      []func(*simconfig.Config)
	allowUnhandled bool
	logger         *slog.Logger
	assemble       Assembler
	sim            sim.Options
}

// Option changes how New builds the sim.
type Option func(*options)

// WithConfig edits the configuration before the sim starts. It starts from
// simconfig.Default() with free loopback ports and a temporary state
// directory; keys left empty are generated.
func WithConfig(f func(*simconfig.Config)) Option {
	return func(o *options) { o.configure = append(o.configure, f) }
}

// AllowUnhandled keeps the test passing when the sim receives requests or
// connections it does not handle (for tests that probe exactly that).
func AllowUnhandled() Option { return func(o *options) { o.allowUnhandled = true } }

// WithLogger sends the sim's logs to l instead of the test log.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithAssembler builds the components with a instead of DefaultAssembler.
func WithAssembler(a Assembler) Option { return func(o *options) { o.assemble = a } }

// Sim is a running simulator. Its fields are read-only.
type Sim struct {
	// HTTPSAddr and MQTTAddr are the listeners on the first listen address
	// (host:port).
	HTTPSAddr, MQTTAddr string
	// CAFile is the PEM file of the sim's CA; CAPool holds the CA.
	CAFile string
	CAPool *x509.CertPool
	// IDScope, GlobalEndpoint and DPSHostName describe the DPS.
	IDScope, GlobalEndpoint, DPSHostName string
	// HubHostNames are the hubs' host names in configuration order.
	HubHostNames []string
	// Status is what the hubsim binary prints and writes as its status file.
	Status server.Status
	// Config is the configuration the sim runs (keys filled in).
	Config *simconfig.Config
	// PKI is the sim's CA (issue device certificates with it).
	PKI *pki.PKI
	// Server is the running server (Unhandled, RecordUnhandled, ports).
	Server *server.Server
	// AdminToken authenticates the admin API (/hubsim/…, /metrics) as
	// "Authorization: Bearer <AdminToken>"; AdminDo sends it.
	AdminToken string

	parts          *sim.Sim // nil with a custom Assembler
	tb             testing.TB
	logDone        *atomic.Bool // set after cleanup: late log lines are dropped
	allowUnhandled bool
	hosts          map[string]bool // lower-case host names DialContext accepts
	client         *http.Client
	closeOnce      sync.Once
}

// New starts a sim and registers its shutdown with tb.Cleanup. It fails
// the test (Fatal) when the sim cannot start.
func New(tb testing.TB, opts ...Option) *Sim {
	tb.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	logDone := new(atomic.Bool)
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(tbWriter{tb, logDone}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	cfg := simconfig.Default()
	cfg.Listen = []string{"127.0.0.1"}
	cfg.Ports = simconfig.Ports{}
	cfg.StateDir = tb.TempDir()
	// Tests get an in-memory database: the same schema (the query language
	// runs on it) without a file or fsyncs; WithConfig can ask for
	// simconfig.StorageSQLite.
	cfg.Storage.Mode = simconfig.StorageMemory
	for _, f := range o.configure {
		f(cfg)
	}
	p, err := server.Prepare(cfg, o.logger)
	if err != nil {
		tb.Fatalf("hubsimtest: %v", err)
	}
	var (
		parts *sim.Sim
		comps server.Components
	)
	if o.assemble != nil {
		comps, err = o.assemble(p, o.logger)
	} else {
		parts, comps, err = sim.Assemble(p, o.logger, o.sim)
	}
	if err != nil {
		_ = p.Server.Close()
		tb.Fatalf("hubsimtest: assemble: %v", err)
	}
	if err := p.Server.Start(comps); err != nil {
		_ = p.Server.Close()
		tb.Fatalf("hubsimtest: %v", err)
	}
	s := &Sim{
		HTTPSAddr:      p.Server.HTTPSAddrs()[0],
		MQTTAddr:       p.Server.MQTTAddrs()[0],
		CAFile:         p.PKI.CAFile(),
		CAPool:         p.PKI.CertPool(),
		IDScope:        cfg.DPS.IDScope,
		GlobalEndpoint: cfg.DPS.GlobalEndpoint,
		DPSHostName:    cfg.DPS.HostName,
		Status:         p.Status(),
		Config:         cfg,
		PKI:            p.PKI,
		Server:         p.Server,
		AdminToken:     p.AdminToken,
		parts:          parts,
		tb:             tb,
		logDone:        logDone,
		allowUnhandled: o.allowUnhandled,
		hosts:          map[string]bool{"localhost": true},
	}
	for _, h := range cfg.Hubs {
		s.HubHostNames = append(s.HubHostNames, h.HostName)
	}
	for _, n := range append(cfg.HostNames(), cfg.Listen...) {
		s.hosts[canonicalHost(n)] = true
	}
	for _, n := range pki.DefaultNames {
		s.hosts[canonicalHost(n)] = true
	}
	tb.Cleanup(s.cleanup)
	return s
}

func (s *Sim) cleanup() {
	s.tb.Helper()
	s.Close()
	s.logDone.Store(true)
	if u := s.Unhandled(); len(u) > 0 && !s.allowUnhandled {
		s.tb.Errorf("hubsimtest: the sim received %d thing(s) it does not handle (use hubsimtest.AllowUnhandled if expected):\n  %s",
			len(u), strings.Join(u, "\n  "))
	}
}

// Close stops the sim and waits for it. Cleanup calls it; call it earlier
// to test what clients do when the service goes away. Idempotent.
func (s *Sim) Close() {
	s.closeOnce.Do(func() {
		if s.client != nil {
			s.client.CloseIdleConnections()
		}
		if err := s.Server.Close(); err != nil {
			s.tb.Errorf("hubsimtest: close: %v", err)
		}
	})
}

// Unhandled lists what the sim received and did not handle so far: HTTP
// requests no route takes ("GET /path"), then what the hubs did not serve
// (unknown hub REST paths, MQTT topics and subscriptions, unsupported twin
// queries: "hub <host> <what>: <detail>"), then what the DPS did not serve
// (unknown device or service API routes, MQTT topics: "dps: <detail>").
// Each part is oldest first.
func (s *Sim) Unhandled() []string {
	out := s.Server.Unhandled()
	if s.parts == nil {
		return out
	}
	if s.parts.Hubs != nil {
		for _, u := range s.parts.Hubs.Unhandled() {
			out = append(out, "hub "+u.Hub+" "+u.What+": "+u.Detail)
		}
	}
	if s.parts.DPS != nil {
		for _, u := range s.parts.DPS.Unhandled() {
			out = append(out, "dps: "+u)
		}
	}
	return out
}

// AdminDo sends an admin API request (path like "/hubsim/hubs" or
// "/metrics") with the admin token to the sim's first hub host name and
// returns the response; the caller closes its body. body may be nil.
func (s *Sim) AdminDo(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	host := s.DPSHostName
	if len(s.HubHostNames) > 0 {
		host = s.HubHostNames[0]
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+host+path, body)
	if err != nil {
		return nil, fmt.Errorf("hubsimtest: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("hubsimtest: %s %s: %w", method, path, err)
	}
	return resp, nil
}

// TLSConfig returns a new client TLS configuration that trusts only the
// sim's CA.
func (s *Sim) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.CAPool, MinVersion: tls.VersionTLS12}
}

// HTTPClient returns an HTTP client (shared by every call) that trusts the
// sim's CA and reaches it through DialContext, so URLs can use the
// configured host names and port 443. It has no timeout: bound requests
// with their context.
func (s *Sim) HTTPClient() *http.Client {
	if s.client == nil {
		s.client = &http.Client{Transport: &http.Transport{
			DialContext:     s.DialContext,
			TLSClientConfig: s.TLSConfig(),
		}}
	}
	return s.client
}

// DialContext connects to the sim's listener for addr: the host must be a
// configured host name (hubs, DPS, streaming endpoint, extra names), a
// listen address or loopback; port 443 or the HTTPS port reaches HTTPS,
// 8883 or the MQTT port reaches MQTT. Anything else is refused, so a
// client under test cannot reach the real service. It has the signature
// of net.Dialer.DialContext for clients' dial seams.
func (s *Sim) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	target, err := s.resolve(addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, network, target)
}

// resolve maps addr to the listener address DialContext would dial.
func (s *Sim) resolve(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("hubsimtest: dial %q: %w", addr, err)
	}
	host = canonicalHost(host)
	if !s.hosts[host] {
		return "", fmt.Errorf("hubsimtest: dial %q: host is not part of the sim (known: %s)", addr, strings.Join(s.knownHosts(), ", "))
	}
	var addrs []string
	switch port {
	case "443", strconv.Itoa(s.Server.HTTPSPort()):
		addrs = s.Server.HTTPSAddrs()
	case "8883", strconv.Itoa(s.Server.MQTTPort()):
		addrs = s.Server.MQTTAddrs()
	default:
		return "", fmt.Errorf("hubsimtest: dial %q: port is neither HTTPS (443, %d) nor MQTT (8883, %d)",
			addr, s.Server.HTTPSPort(), s.Server.MQTTPort())
	}
	// An IP literal that is a listen address reaches that listener (hubs
	// told apart by local address); anything else the first one.
	for _, a := range addrs {
		if h, _, _ := net.SplitHostPort(a); canonicalHost(h) == host {
			return a, nil
		}
	}
	return addrs[0], nil
}

func (s *Sim) knownHosts() []string {
	out := make([]string, 0, len(s.hosts))
	for h := range s.hosts {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// HubConnectionString is the iothubowner service connection string of the
// hub with this host name; it fails the test when there is no such hub.
func (s *Sim) HubConnectionString(hostName string) string {
	s.tb.Helper()
	return s.HubPolicyConnectionString(hostName, simconfig.PolicyIoTHubOwner)
}

// HubPolicyConnectionString is the service connection string of the hub's
// shared access policy with this name (a new hub has iothubowner, service,
// device, registryRead and registryReadWrite); it fails the test when
// there is no such hub or policy.
func (s *Sim) HubPolicyConnectionString(hostName, policy string) string {
	s.tb.Helper()
	h, ok := s.Config.Hub(hostName)
	if !ok {
		s.tb.Fatalf("hubsimtest: no hub %q (hubs: %s)", hostName, strings.Join(s.HubHostNames, ", "))
	}
	cs, ok := h.ConnectionString(policy)
	if !ok {
		s.tb.Fatalf("hubsimtest: hub %q has no %s key", hostName, policy)
	}
	return cs
}

// DPSConnectionString is the provisioningserviceowner service connection
// string of the DPS.
func (s *Sim) DPSConnectionString() string {
	s.tb.Helper()
	cs, ok := s.Config.DPS.ConnectionString(simconfig.PolicyDPSOwner)
	if !ok {
		s.tb.Fatal("hubsimtest: DPS has no provisioningserviceowner key")
	}
	return cs
}

// ClientCertificate returns a device certificate with subject CN cn signed
// by the sim's CA (X.509 CA attestation).
func (s *Sim) ClientCertificate(cn string) tls.Certificate {
	s.tb.Helper()
	certPEM, keyPEM, err := s.PKI.IssueClient(cn)
	if err != nil {
		s.tb.Fatalf("hubsimtest: %v", err)
	}
	return mustPair(s.tb, certPEM, keyPEM)
}

// SelfSignedCertificate returns a self-signed device certificate with
// subject CN cn (X.509 thumbprint attestation).
func (s *Sim) SelfSignedCertificate(cn string) tls.Certificate {
	s.tb.Helper()
	certPEM, keyPEM, err := pki.SelfSigned(cn)
	if err != nil {
		s.tb.Fatalf("hubsimtest: %v", err)
	}
	return mustPair(s.tb, certPEM, keyPEM)
}

func mustPair(tb testing.TB, certPEM, keyPEM []byte) tls.Certificate {
	tb.Helper()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		tb.Fatalf("hubsimtest: %v", err)
	}
	pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		tb.Fatalf("hubsimtest: %v", err)
	}
	return pair
}

func canonicalHost(h string) string {
	h = strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
	if ip := net.ParseIP(h); ip != nil {
		return ip.String()
	}
	return h
}

// tbWriter sends log lines to the test log until done is set (testing
// panics on Log after the test has completed).
type tbWriter struct {
	tb   testing.TB
	done *atomic.Bool
}

func (w tbWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}
