package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/redact"
	"github.com/porthole-iot/porthole/hubsim/internal/relay"
)

// Broker is what the server needs from hubsim's MQTT broker
// (*broker.Broker implements it).
type Broker interface {
	// ServeHTTP serves MQTT over WebSocket on /$iothub/websocket.
	http.Handler
	// ServeConn serves one MQTT connection until it ends, ctx is done or
	// the broker closes; it closes c. c is a *tls.Conn, transport "mqtt".
	ServeConn(ctx context.Context, c net.Conn, transport string) error
	// Close disconnects every client and waits for ServeConn/ServeHTTP calls.
	Close() error
}

// Components are the parts of the simulator the server routes to. Any of
// them may be nil: its routes then answer 503 (MQTT connections are closed).
// Handlers must return once their request's context is done: Server.Close
// cancels it, then waits for every handler call to return.
type Components struct {
	Broker Broker
	Relay  http.Handler // /bridges/…
	Hub    http.Handler // /devices… /twins… /messages… …
	// DPS serves /<idScope>/registrations/… (device API) and
	// /enrollments… /enrollmentGroups… /registrations… (service API).
	DPS   http.Handler
	Admin http.Handler // /hubsim/…
	// Close, if non-nil, stops the components other than Broker (hub, DPS,
	// relay). Server.Close calls it after closing the listeners and the
	// broker and before waiting for in-flight handlers, so hijacked
	// connections (relay WebSockets) end.
	Close func() error
}

// TransportMQTT is the transport name the server passes to ServeConn.
const TransportMQTT = "mqtt"

// Defaults.
const (
	// shutdownGrace bounds how long Close waits for non-hijacked HTTP
	// requests to finish after their contexts were cancelled.
	shutdownGrace = 5 * time.Second
	// portPickAttempts: with port 0 and several listen addresses, the port
	// picked on the first may be taken on another; try again this often.
	portPickAttempts = 8
)

// Config configures a Server.
type Config struct {
	// Listen are IP addresses; each gets both ports. Empty means 127.0.0.1.
	Listen []string
	// HTTPSPort and MQTTPort; 0 picks a free port (the same on every address).
	HTTPSPort, MQTTPort int
	// Certificate is the TLS server certificate.
	Certificate tls.Certificate
	// Logger; nil discards.
	Logger *slog.Logger
	// Now returns the current time (error bodies); nil means time.Now.
	Now func() time.Time
	// Limits bound HTTPS connections, headers and bodies; zero fields take
	// the defaults.
	Limits Limits
}

// Server is hubsim's listening frame. Create with New, start with Start,
// stop with Close.
type Server struct {
	log       *slog.Logger
	now       func() time.Time
	tlsConfig *tls.Config
	mqttTLS   *tls.Config    // tlsConfig with the handshake gate
	gate      *handshakeGate // bounds concurrent MQTT/TLS handshakes (handshake.go)
	httpsLns  []net.Listener // raw TCP; closed by httpSrv (after Start) or Close
	mqttLns   []net.Listener // raw TCP; closed by Close
	httpsPort int
	mqttPort  int
	limits    Limits
	caps      *connCaps // HTTPS connection caps

	ctx    context.Context // base context of requests and MQTT conns; cancelled by Close
	cancel context.CancelFunc

	mu        sync.Mutex
	started   bool          // guarded by mu
	closed    bool          // guarded by mu
	unhandled []string      // guarded by mu
	comps     Components    // set once by Start, read-only after
	httpSrv   *http.Server  // set by Start
	failErr   error         // first unexpected serve error; guarded by mu
	failed    chan struct{} // closed on the first unexpected serve error
	closeErr  error         // result of the first Close; guarded by mu
	closeDone chan struct{} // closed when the first Close finished

	// wg counts the goroutines the server owns: HTTP serve loops, MQTT
	// accept loops and one per MQTT connection. Close waits for it.
	wg sync.WaitGroup
	// inflight counts router handler calls, including hijacked ones that
	// http.Server no longer tracks. Close waits for it.
	inflight sync.WaitGroup
}

// New binds the listeners (so the ports are known) but serves nothing until
// Start. Close releases the listeners either way.
func New(cfg Config) (*Server, error) {
	if len(cfg.Certificate.Certificate) == 0 {
		return nil, errors.New("server: no TLS certificate")
	}
	listen := cfg.Listen
	if len(listen) == 0 {
		listen = []string{"127.0.0.1"}
	}
	s := &Server{
		log:       redact.Logger(cfg.Logger),
		now:       cfg.Now,
		failed:    make(chan struct{}),
		closeDone: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.limits = cfg.Limits.withDefaults()
	s.caps = newConnCaps(s.limits, s.log)
	s.tlsConfig = &tls.Config{
		Certificates: []tls.Certificate{cfg.Certificate},
		MinVersion:   tls.VersionTLS12,
		// X.509 devices present a certificate; the hub and DPS
		// personalities verify it (self-signed thumbprints or CA chains),
		// so TLS only asks for it.
		ClientAuth: tls.RequestClientCert,
		// No NextProtos: no ALPN, so no HTTP/2 (PROTOCOL.md §14: SDKs use
		// TLS without ALPN; WebSocket upgrades need HTTP/1.1).
	}
	var err error
	if s.httpsLns, s.httpsPort, err = listenAll(listen, cfg.HTTPSPort); err != nil {
		return nil, fmt.Errorf("server: https: %w", err)
	}
	if s.mqttLns, s.mqttPort, err = listenAll(listen, cfg.MQTTPort); err != nil {
		closeAll(s.httpsLns)
		return nil, fmt.Errorf("server: mqtt: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.gate = newHandshakeGate(handshakeSlots)
	s.mqttTLS = s.gate.config(s.ctx, s.tlsConfig)
	return s, nil
}

// listenAll binds port on every address; port 0 picks one on the first
// address and uses it on the others.
func listenAll(addrs []string, port int) ([]net.Listener, int, error) {
	var lastErr error
	for attempt := 0; attempt < portPickAttempts; attempt++ {
		lns, picked, err := tryListenAll(addrs, port)
		if err == nil {
			return lns, picked, nil
		}
		lastErr = err
		if port != 0 || len(addrs) == 1 {
			break
		}
	}
	return nil, 0, lastErr
}

func tryListenAll(addrs []string, port int) ([]net.Listener, int, error) {
	var lns []net.Listener
	for _, a := range addrs {
		ln, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(port)))
		if err != nil {
			closeAll(lns)
			return nil, 0, err
		}
		if port == 0 {
			port = ln.Addr().(*net.TCPAddr).Port
		}
		lns = append(lns, ln)
	}
	return lns, port, nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		_ = ln.Close()
	}
}

// HTTPSPort is the bound HTTPS port.
func (s *Server) HTTPSPort() int { return s.httpsPort }

// MQTTPort is the bound MQTT port.
func (s *Server) MQTTPort() int { return s.mqttPort }

// HTTPSAddrs are the bound HTTPS addresses (host:port).
func (s *Server) HTTPSAddrs() []string { return addrs(s.httpsLns) }

// MQTTAddrs are the bound MQTT addresses (host:port).
func (s *Server) MQTTAddrs() []string { return addrs(s.mqttLns) }

func addrs(lns []net.Listener) []string {
	out := make([]string, len(lns))
	for i, ln := range lns {
		out[i] = ln.Addr().String()
	}
	return out
}

// TLSConfig returns a copy of the server's TLS configuration.
func (s *Server) TLSConfig() *tls.Config { return s.tlsConfig.Clone() }

// Handler is the HTTPS router over the started components (before Start:
// over none). Useful to test routing without TLS.
func (s *Server) Handler() http.Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, err := s.routerLocked()
	if err != nil {
		// Start refused these components already.
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeHubError(w, http.StatusServiceUnavailable, hubCodeServiceUnavailable, err.Error(), s.now())
		})
	}
	return rt
}

func (s *Server) routerLocked() (*router, error) {
	return newRouterFor(s.comps, s.now, s.recordRequest, &s.inflight)
}

// Start serves the listeners with the given components. It may be called
// once; it does not block.
func (s *Server) Start(c Components) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("server: closed")
	}
	if s.started {
		return errors.New("server: already started")
	}
	rt, err := newRouterFor(c, s.now, s.recordRequest, &s.inflight)
	if err != nil {
		return err
	}
	s.started = true
	s.comps = c
	s.httpSrv = &http.Server{
		Handler:           limitBodies(rt, s.limits, s.now),
		ReadHeaderTimeout: s.limits.ReadHeaderTimeout,
		IdleTimeout:       s.limits.IdleTimeout,
		// TLS handshake failures of scanners and untrusting clients are noise.
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context { return s.ctx },
		// HTTP/1.1 only: no h2 even if a client asks.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	s.httpSrv.Protocols = &protocols
	for _, ln := range s.httpsLns {
		// The relay's wrapper lets it write each forwarded stream frame
		// with one system call; other HTTPS traffic passes through.
		// The caps sit under it, so an over-cap connection costs no TLS
		// handshake.
		tln := tls.NewListener(relay.WrapListener(s.caps.wrap(ln)), s.tlsConfig)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.httpSrv.Serve(tln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.fail(fmt.Errorf("server: https %s: %w", ln.Addr(), err))
			}
		}()
	}
	for _, ln := range s.mqttLns {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.acceptMQTT(ln)
		}()
	}
	s.log.Info("hubsim listening", "https", s.HTTPSAddrs(), "mqtt", s.MQTTAddrs())
	return nil
}

// acceptMQTT runs one MQTT listener's accept loop until it is closed.
func (s *Server) acceptMQTT(ln net.Listener) {
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: back off, as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("mqtt accept failed; retrying", "err", err, "delay", delay)
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-s.ctx.Done():
					t.Stop()
					return
				}
				continue
			}
			s.fail(fmt.Errorf("server: mqtt %s: %w", ln.Addr(), err))
			return
		}
		delay = 0
		tconn := tls.Server(s.gate.wrap(conn), s.mqttTLS)
		b := s.comps.Broker
		if b == nil {
			s.recordUnhandled("MQTT connection from " + conn.RemoteAddr().String() + " (no broker)")
			_ = tconn.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			err := b.ServeConn(s.ctx, tconn, TransportMQTT)
			if err != nil {
				s.log.Debug("mqtt connection ended", "remote", conn.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// fail records the first unexpected serve error and signals Done.
func (s *Server) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.failErr != nil {
		return
	}
	s.failErr = err
	s.log.Error("hubsim listener failed", "err", err)
	close(s.failed)
}

// Done is closed when a listener fails unexpectedly; Err says why. The
// owner should then Close the server.
func (s *Server) Done() <-chan struct{} { return s.failed }

// Err is the unexpected serve error that closed Done, or nil.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failErr
}

func (s *Server) recordRequest(method, path string) {
	s.log.Warn("unhandled request", "method", method, "path", path)
	s.appendUnhandled(method + " " + path)
}

func (s *Server) recordUnhandled(what string) {
	s.log.Warn("unhandled", "what", what)
	s.appendUnhandled(what)
}

func (s *Server) appendUnhandled(what string) {
	s.mu.Lock()
	s.unhandled = append(s.unhandled, what)
	s.mu.Unlock()
}

// RecordUnhandled adds what (e.g. "POST /twins/d1/unknown" or an MQTT
// topic) to the unhandled list and logs a warning. Components call it for
// requests they do not serve, so tests see them in Unhandled. Safe for
// concurrent use.
func (s *Server) RecordUnhandled(what string) { s.recordUnhandled(what) }

// Unhandled lists what the simulator received and did not serve, in order
// ("METHOD /path" for HTTP requests).
func (s *Server) Unhandled() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.unhandled...)
}

// Close stops the listeners, cancels every request and MQTT connection
// context, closes the broker and the other components, and waits for all
// of it. It is idempotent; every call returns the first call's result.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.closeDone
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.closeErr
	}
	s.closed = true
	httpSrv, comps := s.httpSrv, s.comps
	s.mu.Unlock()

	var errs []error
	closeAll(s.mqttLns)
	s.cancel() // request contexts and MQTT connections
	if httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		if err := httpSrv.Shutdown(ctx); err != nil {
			_ = httpSrv.Close()
		}
		cancel()
	} else {
		closeAll(s.httpsLns)
	}
	if comps.Broker != nil {
		if err := comps.Broker.Close(); err != nil {
			errs = append(errs, fmt.Errorf("server: close broker: %w", err))
		}
	}
	if comps.Close != nil {
		if err := comps.Close(); err != nil {
			errs = append(errs, fmt.Errorf("server: close components: %w", err))
		}
	}
	s.wg.Wait()
	s.inflight.Wait()

	s.mu.Lock()
	s.closeErr = errors.Join(errs...)
	err := s.closeErr
	s.mu.Unlock()
	close(s.closeDone)
	return err
}
