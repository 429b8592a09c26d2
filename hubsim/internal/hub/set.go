package hub

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/redact"
	"github.com/porthole-iot/porthole/hubsim/internal/relay"
	"github.com/porthole-iot/porthole/hubsim/internal/sas"
	"github.com/porthole-iot/porthole/hubsim/internal/store"
)

// StreamRelay is what the hub needs from the streaming endpoint;
// *relay.Relay implements it.
type StreamRelay interface {
	// Create registers a new stream and returns the URL and tokens both sides
	// use. It returns an error wrapping relay.ErrThrottled when a stream limit
	// is exceeded.
	Create(spec relay.StreamSpec) (relay.Ticket, error)
	// Cancel forgets a stream that will not happen (rejected, timed out).
	Cancel(id, reason string)
	// Accepted tells the relay the device accepted the stream request.
	Accepted(id string)
}

// HubConfig configures one hub.
type HubConfig struct {
	// HostName is the hub's host name, e.g. "hub1.azure-devices.net" or an IP
	// literal. Matched case-insensitively.
	HostName string
	// Name is the hub's resource name (what Azure calls the IoT hub's name);
	// empty means the first label of HostName.
	Name string
	// Policies are the hub's shared access policies. Nil means the Azure
	// defaults (iothubowner, service, device, registryRead, registryReadWrite)
	// with random keys; read them back with Hub.Policies.
	Policies []sas.Policy
	// ClientCAs are the verified CA certificates devices with
	// "certificateAuthority" authentication chain to.
	ClientCAs []*x509.Certificate
	// Addrs are extra local IP addresses that identify this hub when neither
	// the Host header nor the MQTT username names it (several hubs on several
	// loopback addresses). An IP-literal HostName counts automatically.
	Addrs []string
}

// Config configures a Set.
type Config struct {
	Hubs  []HubConfig
	Relay StreamRelay // nil: stream requests answer 503
	// Logger receives structured logs; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AfterFunc schedules f after d and returns a stop function that reports
	// whether it stopped the call; nil means time.AfterFunc. It drives token
	// expiry, method and stream timeouts, so tests can fire them at will.
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
	// StreamLog, if non-nil, is told about stream requests and their outcome.
	StreamLog func(ev StreamEvent)
	// Faults are test seams that make the hubs misbehave; nil means none.
	Faults *Faults
	// MethodDefaultTimeout is the method response timeout when the request
	// gives none; zero means 30 s.
	MethodDefaultTimeout time.Duration
	// ConnectsPerSecond throttles new device connections per hub (IoT Hub's
	// device-connections throttle; 100 is the documented S1 minimum); zero
	// means unlimited.
	ConnectsPerSecond float64
	// Rand is the source for generated keys and ids; nil means crypto/rand.
	Rand io.Reader
	// Store, if non-nil, keeps registries, twins and C2D queues: NewSet
	// loads them, and every change is written before it is acknowledged.
	// The caller owns it (Set.Close does not close it).
	Store *store.Store
	// Twins runs twin queries (POST /devices/query). Nil means the Store's
	// twin_docs (SQLTwins) when there is a Store, else a snapshot of the
	// hub's in-memory twins per query.
	Twins TwinQuerier
}

// StreamEvent reports one step of a stream request.
type StreamEvent struct {
	Time     time.Time
	Hub      string
	DeviceID string
	ModuleID string
	Name     string
	StreamID string // the relay ticket ID, empty before Create
	// Event is "requested", "accepted", "rejected", "timeout", "offline" or "failed".
	Event  string
	Status int    // the device's status code, when it answered
	Reason string // human detail
}

// Set is every simulated IoT hub of one hubsim process, keyed by host name.
// It serves the hub MQTT personality (broker.Personality), the hub service
// REST API (RegisterRoutes, ServeHTTP), what hubsim's admin API reads
// (package admin) and what DPS needs (ident.Hubs).
type Set struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	after  func(d time.Duration, f func()) (stop func() bool)
	rand   io.Reader
	hubs   []*Hub // configuration order; immutable after NewSet
	byHost map[string]*Hub
	byAddr map[string]*Hub

	muxOnce sync.Once      // builds mux on the first ServeHTTP
	mux     *http.ServeMux // ServeHTTP's own routes (standalone use)

	mu        sync.Mutex
	closed    bool        // guarded by mu
	unhandled []Unhandled // guarded by mu
}

// Unhandled records something a client sent that hubsim does not serve.
type Unhandled struct {
	Time   time.Time
	Hub    string
	What   string // "mqtt-publish", "mqtt-subscribe", "rest", "query"
	Detail string
}

// NewSet builds the hubs. It returns an error for an empty or duplicate host name.
func NewSet(cfg Config) (*Set, error) {
	s := &Set{cfg: cfg, log: redact.Logger(cfg.Logger), now: cfg.Now, after: cfg.AfterFunc, rand: cfg.Rand,
		byHost: map[string]*Hub{}, byAddr: map[string]*Hub{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.after == nil {
		s.after = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.cfg.Twins == nil {
		s.cfg.Twins = snapshotTwins{set: s}
		if cfg.Store != nil {
			// The store keeps twin_docs current with every acknowledged change.
			s.cfg.Twins = SQLTwins{DB: cfg.Store.DB()}
		}
	}
	if s.cfg.MethodDefaultTimeout <= 0 {
		s.cfg.MethodDefaultTimeout = 30 * time.Second
	}
	if len(cfg.Hubs) == 0 {
		return nil, errors.New("hub: no hubs configured")
	}
	var errs []error
	for i, hc := range cfg.Hubs {
		host := strings.ToLower(strings.TrimSpace(hc.HostName))
		if host == "" || strings.ContainsAny(host, "/?# ") {
			errs = append(errs, fmt.Errorf("hub %d: invalid host name %q", i, hc.HostName))
			continue
		}
		if _, dup := s.byHost[host]; dup {
			errs = append(errs, fmt.Errorf("hub %d: duplicate host name %q", i, hc.HostName))
			continue
		}
		pol := hc.Policies
		if pol == nil {
			var err error
			if pol, err = DefaultPolicies(s.rand); err != nil {
				return nil, err
			}
		}
		pool := x509.NewCertPool()
		for _, c := range hc.ClientCAs {
			pool.AddCert(c)
		}
		h := newHub(s, hc.HostName, hc.Name, pol, pool, len(hc.ClientCAs) > 0)
		s.hubs = append(s.hubs, h)
		s.byHost[host] = h
		if ip := net.ParseIP(host); ip != nil {
			s.byAddr[ip.String()] = h
		}
		for _, a := range hc.Addrs {
			if ip := net.ParseIP(a); ip != nil {
				s.byAddr[ip.String()] = h
			} else {
				errs = append(errs, fmt.Errorf("hub %q: address %q is not an IP", hc.HostName, a))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Store != nil {
		for _, h := range s.hubs {
			if err := h.load(context.Background(), cfg.Store); err != nil {
				return nil, fmt.Errorf("hub: loading state: %w", err)
			}
		}
	}
	return s, nil
}

// DefaultPolicies returns Azure's default shared access policies with fresh
// random keys: iothubowner (all rights), service (ServiceConnect), device
// (DeviceConnect), registryRead (RegistryRead), registryReadWrite (RegistryRead,
// RegistryWrite). [doc: Control access to IoT Hub (iot-hub-devguide-security.md)]
func DefaultPolicies(r io.Reader) ([]sas.Policy, error) {
	if r == nil {
		r = rand.Reader
	}
	defs := []struct {
		name   string
		rights []string
	}{
		{"iothubowner", []string{sas.RightRegistryRead, sas.RightRegistryWrite, sas.RightServiceConnect, sas.RightDeviceConnect}},
		{"service", []string{sas.RightServiceConnect}},
		{"device", []string{sas.RightDeviceConnect}},
		{"registryRead", []string{sas.RightRegistryRead}},
		{"registryReadWrite", []string{sas.RightRegistryRead, sas.RightRegistryWrite}},
	}
	out := make([]sas.Policy, 0, len(defs))
	for _, d := range defs {
		pk, err := newKey(r)
		if err != nil {
			return nil, err
		}
		sk, err := newKey(r)
		if err != nil {
			return nil, err
		}
		out = append(out, sas.Policy{Name: d.name, PrimaryKey: pk, SecondaryKey: sk, Rights: d.rights})
	}
	return out, nil
}

// newKey returns a random 32-byte key, base64 encoded, as the hub generates.
func newKey(r io.Reader) (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("hub: generating key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b[:]), nil
}

// Hub returns the hub with this host name (case-insensitive).
func (s *Set) Hub(host string) (*Hub, bool) {
	h, ok := s.byHost[strings.ToLower(host)]
	return h, ok
}

// Hubs returns every hub in configuration order.
func (s *Set) Hubs() []*Hub { return append([]*Hub(nil), s.hubs...) }

// lookup picks the hub for a host (port stripped, case-insensitive); when no
// hub has that name and there is exactly one hub, that one; else the hub
// bound to the local address.
func (s *Set) lookup(host, localAddr string) (*Hub, bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if h, ok := s.byHost[strings.ToLower(host)]; ok {
		return h, true
	}
	if len(s.hubs) == 1 {
		return s.hubs[0], true
	}
	if localAddr != "" {
		ip := localAddr
		if h, _, err := net.SplitHostPort(localAddr); err == nil {
			ip = h
		}
		if p := net.ParseIP(strings.Trim(ip, "[]")); p != nil {
			if h, ok := s.byAddr[p.String()]; ok {
				return h, true
			}
		}
	}
	return nil, false
}

// HostNames lists the hubs' host names in configuration order (ident.Hubs).
func (s *Set) HostNames() []string {
	out := make([]string, len(s.hubs))
	for i, h := range s.hubs {
		out[i] = h.host
	}
	return out
}

// Unhandled returns what clients sent that hubsim does not serve, oldest first.
func (s *Set) Unhandled() []Unhandled {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Unhandled(nil), s.unhandled...)
}

func (s *Set) recordUnhandled(hub, what, detail string) {
	s.log.Warn("hubsim: unhandled request", "hub", hub, "what", what, "detail", detail)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.unhandled) < 1000 {
		s.unhandled = append(s.unhandled, Unhandled{Time: s.now(), Hub: hub, What: what, Detail: detail})
	}
}

// Close disconnects every device, fails pending method and stream calls and
// waits for the per-connection goroutines. It is idempotent.
func (s *Set) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	for _, h := range s.hubs {
		h.close()
	}
	return nil
}

func (s *Set) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
