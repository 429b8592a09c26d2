package dps

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/porthole-iot/porthole/sdk/auth"
	"github.com/porthole-iot/porthole/sdk/retry"
)

// Config configures a Client. IDScope, RegistrationID (or a Certificate to
// take it from) and exactly one of SymmetricKey and Certificate are
// required; everything else has a default.
type Config struct {
	// GlobalEndpoint is the DPS device endpoint, host[:port]; default
	// DefaultGlobalEndpoint. A port, if given, is used for whichever
	// transport is selected; without one HTTPS and MQTT-WS use 443 and MQTT
	// uses 8883.
	GlobalEndpoint string
	// IDScope names the DPS instance, e.g. "0ne00000001".
	IDScope string
	// RegistrationID is the device's registration ID. With X.509 it must be
	// the certificate's subject CN; when empty it is taken from there.
	RegistrationID string
	// Transport is TransportHTTPS (default), TransportMQTT (MQTT/TLS, port
	// 8883) or TransportMQTTWS (MQTT over a TLS WebSocket on 443 at
	// /$iothub/websocket, subprotocol "mqtt").
	Transport string
	// SymmetricKey is the device's base64 key: an individual enrollment's
	// key, or one derived from a group key with auth.DeriveGroupKey.
	SymmetricKey string
	// Certificate is the device's X.509 certificate and key, presented as
	// the TLS client certificate (X.509 attestation).
	Certificate *tls.Certificate
	// RootCAs verifies the service's certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// ProxyURL, if set, is an HTTP proxy ("http://[user:password@]host:port")
	// that every connection is tunnelled through with CONNECT (MQTT too,
	// to port 8883, which many proxies refuse; MQTT-WS uses 443). The
	// environment's proxy variables are not consulted.
	ProxyURL *url.URL
	// DialContext opens TCP connections (to the endpoint or the proxy); nil
	// means a net.Dialer. Tests and host mapping plug in here.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// APIVersion is sent as api-version; default DefaultAPIVersion.
	APIVersion string
	// Retry decides how transient failures are retried; the zero value is
	// the default policy of package retry. Its Clock also times the waits
	// between operation-status polls.
	Retry retry.Policy
	// RequestTimeout bounds one request and its answer (including an MQTT
	// connect); an attempt that runs out is retried like a transport
	// failure. Default DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Logger receives the client's logs; nil discards them. Tokens and keys
	// are never logged.
	Logger *slog.Logger
	// Now is the clock for SAS expiry and HTTP-date Retry-After values; nil
	// means time.Now.
	Now func() time.Time
}

// Client registers one device with DPS. It holds no connection between
// calls: each Register or Lookup opens what it needs and closes it before
// returning, so a Client needs no Close. Its methods are safe for
// concurrent use.
type Client struct {
	cfg  Config
	host string // endpoint host
	port string // port for cfg.Transport
	// httpsPort is where HTTPS requests go: port, except with MQTT, where
	// it is 443 (Lookup always uses HTTPS).
	httpsPort string
	signer    *auth.KeySigner
	tlsConf   *tls.Config
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	https     *httpConns // HTTPS requests; the idle connection is closed after each call
	log       *slog.Logger
	clock     retry.Clock
}

// New checks cfg and returns a Client. It does no I/O.
func New(cfg Config) (*Client, error) {
	var problems []error
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	if cfg.GlobalEndpoint == "" {
		cfg.GlobalEndpoint = DefaultGlobalEndpoint
	}
	if cfg.Transport == "" {
		cfg.Transport = TransportHTTPS
	}
	if cfg.APIVersion == "" {
		cfg.APIVersion = DefaultAPIVersion
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Client{cfg: cfg, log: cfg.Logger, clock: cfg.Retry.Clock}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.clock == nil {
		c.clock = retry.RealClock()
	}

	switch cfg.Transport {
	case TransportHTTPS, TransportMQTTWS:
		c.port = portHTTPS
	case TransportMQTT:
		c.port = portMQTT
	default:
		bad("unknown transport %q (want %q, %q or %q)", cfg.Transport, TransportHTTPS, TransportMQTT, TransportMQTTWS)
	}
	if cfg.ProxyURL != nil && (!strings.EqualFold(cfg.ProxyURL.Scheme, "http") || cfg.ProxyURL.Host == "") {
		bad("proxy %q: want http://host:port", cfg.ProxyURL.Redacted())
	}
	host, port, err := splitEndpoint(cfg.GlobalEndpoint)
	if err != nil {
		bad("global endpoint: %v", err)
	}
	c.host = host
	if port != "" {
		c.port = port
	}
	c.httpsPort = c.port
	if cfg.Transport == TransportMQTT {
		c.httpsPort = portHTTPS
	}
	if cfg.IDScope == "" || strings.ContainsAny(cfg.IDScope, "/?#% ") {
		bad("ID scope %q is empty or has characters that cannot appear in a path", cfg.IDScope)
	}

	switch {
	case cfg.SymmetricKey != "" && cfg.Certificate != nil:
		bad("set either SymmetricKey or Certificate, not both")
	case cfg.SymmetricKey == "" && cfg.Certificate == nil:
		bad("one of SymmetricKey and Certificate is required")
	case cfg.Certificate != nil:
		if len(cfg.Certificate.Certificate) == 0 {
			bad("certificate has no certificate data")
			break
		}
		leaf := cfg.Certificate.Leaf
		if leaf == nil {
			if leaf, err = x509.ParseCertificate(cfg.Certificate.Certificate[0]); err != nil {
				bad("certificate: %v", err)
				break
			}
		}
		switch cn := leaf.Subject.CommonName; {
		case c.cfg.RegistrationID == "":
			c.cfg.RegistrationID = cn
		case !strings.EqualFold(c.cfg.RegistrationID, cn):
			// DPS takes the registration ID from the certificate's CN
			// (MicrosoftDocs/azure-docs articles/iot/iot-mqtt-connect-to-iot-dps.md).
			bad("registration ID %q is not the certificate's subject CN %q", c.cfg.RegistrationID, cn)
		}
	}
	if c.cfg.RegistrationID == "" || strings.ContainsAny(c.cfg.RegistrationID, "/?#% ") {
		bad("registration ID %q is empty or has characters that cannot appear in a path", c.cfg.RegistrationID)
	}
	if cfg.SymmetricKey != "" && c.cfg.RegistrationID != "" && cfg.IDScope != "" {
		if c.signer, err = auth.NewDPSSigner(cfg.IDScope, c.cfg.RegistrationID, cfg.SymmetricKey, cfg.Now); err != nil {
			bad("symmetric key: %v", err)
		}
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}

	c.tlsConf = &tls.Config{RootCAs: cfg.RootCAs, ServerName: host, MinVersion: tls.VersionTLS12}
	if cfg.Certificate != nil {
		c.tlsConf.Certificates = []tls.Certificate{*cfg.Certificate}
	}
	c.dial = cfg.DialContext
	if c.dial == nil {
		d := &net.Dialer{Timeout: cfg.RequestTimeout, KeepAlive: 30 * time.Second}
		c.dial = d.DialContext
	}
	c.https = &httpConns{c: c}
	c.log = c.log.With("device", c.cfg.RegistrationID)
	return c, nil
}

func splitEndpoint(ep string) (host, port string, err error) {
	if strings.Contains(ep, "://") || strings.ContainsAny(ep, "/?#@") {
		return "", "", fmt.Errorf("%q is not host[:port]", ep)
	}
	host, port, err = net.SplitHostPort(ep)
	if err != nil {
		// No port (a bare host or IPv6 literal without brackets).
		host, port = strings.Trim(ep, "[]"), ""
	}
	if host == "" {
		return "", "", fmt.Errorf("%q has no host", ep)
	}
	return host, port, nil
}

// RegistrationID is the registration ID the client registers (from Config
// or the certificate's CN).
func (c *Client) RegistrationID() string { return c.cfg.RegistrationID }

// response is one DPS answer, whatever the transport.
type response struct {
	status        int
	body          []byte
	retryAfter    time.Duration
	hasRetryAfter bool
	errorCode     int // x-ms-error-code header (HTTPS only)
}

// session carries register and poll requests over one transport for the
// duration of one Register call. Not safe for concurrent use.
type session interface {
	register(ctx context.Context, body []byte) (response, error)
	poll(ctx context.Context, operationID string) (response, error)
	close()
}

func (c *Client) newSession() session {
	if c.cfg.Transport == TransportHTTPS {
		return httpsSession{c}
	}
	return newMQTTSession(c)
}

// Register registers the device and polls until DPS finishes, honouring
// the retry-after DPS sends (DefaultPollInterval when it sends none).
// payload, if non-nil, is sent as the registration's custom payload (JSON:
// a json.RawMessage or []byte is sent as is, anything else is marshalled).
//
// Transient failures (429, 5xx, transport errors, an attempt that timed
// out) are retried under Config.Retry: a 429 waits its Retry-After. A
// canceled ctx stops at once. On success the Result has status "assigned".
// A registration DPS finishes as "failed" or "disabled" returns that Result
// and a *RegistrationError (errors.Is ErrFailed / ErrDisabled). DPS refusing
// a request returns a *StatusError (e.g. 401 for a wrong key).
func (c *Client) Register(ctx context.Context, payload any) (*Result, error) {
	pl, err := encodePayload(payload)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(wireRequest{RegistrationID: c.cfg.RegistrationID, Payload: pl})
	if err != nil {
		return nil, fmt.Errorf("dps: register: %w", err)
	}
	sess := c.newSession()
	defer func() {
		sess.close()
		c.https.closeIdle()
	}()
	sched := c.cfg.Retry.NewSchedule()

	resp, err := c.call(ctx, sched, "register", func(ctx context.Context) (response, error) {
		return sess.register(ctx, body)
	})
	if err != nil {
		return nil, err
	}
	var opID string
	for {
		op, err := decodeOperation(resp.body)
		if err != nil {
			return nil, fmt.Errorf("dps: register: %w", err)
		}
		if op.OperationID == "" {
			op.OperationID = opID // a poll answer may leave it out
		}
		switch op.Status {
		case StatusAssigned:
			if !op.Result.Assigned() {
				return nil, fmt.Errorf("dps: register: %w: status assigned without hub and device ID", ErrBadResponse)
			}
			c.log.Info("dps: device assigned", "hub", op.Result.AssignedHub, "substatus", op.Result.Substatus)
			return op.Result, nil
		case StatusFailed, StatusDisabled:
			res := op.Result
			if res == nil {
				res = &Result{RegistrationID: c.cfg.RegistrationID, Status: op.Status}
			}
			rerr := &RegistrationError{Status: op.Status, Result: res}
			c.log.Info("dps: registration not assigned", "status", op.Status, "err", rerr)
			return res, rerr
		case StatusAssigning, StatusUnassigned:
			// Keep polling: C# treats "unassigned" like "assigning"
			// (Azure/azure-iot-sdk-csharp provisioning/transport/mqtt/src/
			// ProvisioningChannelHandlerAdapter.cs).
		default:
			return nil, fmt.Errorf("dps: register: %w: status %q", ErrBadResponse, op.Status)
		}
		if op.OperationID == "" {
			return nil, fmt.Errorf("dps: register: %w: status %q without an operation ID", ErrBadResponse, op.Status)
		}
		wait := pollInterval(resp)
		c.log.Debug("dps: waiting to poll", "status", op.Status, "wait", wait)
		if err := c.sleep(ctx, wait); err != nil {
			return nil, err
		}
		opID = op.OperationID
		resp, err = c.call(ctx, sched, "poll", func(ctx context.Context) (response, error) {
			return sess.poll(ctx, opID)
		})
		if err != nil {
			return nil, err
		}
	}
}

// pollInterval is the wait before the next poll: the answer's retry-after
// within [minPollInterval, maxPollInterval], else DefaultPollInterval.
func pollInterval(r response) time.Duration {
	if !r.hasRetryAfter {
		return DefaultPollInterval
	}
	return min(max(r.retryAfter, minPollInterval), maxPollInterval)
}

// Lookup asks DPS for the device's current registration state without
// registering (Registration Status Lookup, `POST
// /{idScope}/registrations/{registrationId}`). It always uses HTTPS, also
// when Config.Transport is MQTT: DPS's MQTT API has only register and
// operation-status topics (MicrosoftDocs/azure-docs
// articles/iot/iot-mqtt-connect-to-iot-dps.md), and the SDKs send
// "iotdps-get-registration" only over AMQP (Azure/azure-iot-sdk-node
// provisioning/transport/amqp/src/amqp.ts). With MQTT-WS the request goes to
// the same host and port; with MQTT to port 443 of the same host, whatever
// port GlobalEndpoint names for MQTT.
//
// The Result can have any status; check Result.Assigned. A device DPS has
// no record of yields a *StatusError with StatusCode 404. Retries as
// Register does.
func (c *Client) Lookup(ctx context.Context) (*Result, error) {
	body, err := json.Marshal(wireRequest{RegistrationID: c.cfg.RegistrationID})
	if err != nil {
		return nil, fmt.Errorf("dps: lookup: %w", err)
	}
	defer c.https.closeIdle()
	s := httpsSession{c}
	resp, err := c.call(ctx, c.cfg.Retry.NewSchedule(), "lookup", func(ctx context.Context) (response, error) {
		return s.lookup(ctx, body)
	})
	if err != nil {
		return nil, err
	}
	res, err := decodeResult(resp.body)
	if err != nil {
		return nil, fmt.Errorf("dps: lookup: %w", err)
	}
	return res, nil
}

// call runs one request until it gets a 2xx answer, retrying transient
// failures under sched. Each attempt is bounded by RequestTimeout.
func (c *Client) call(ctx context.Context, sched *retry.Schedule, what string, req func(context.Context) (response, error)) (response, error) {
	for {
		if err := ctx.Err(); err != nil {
			return response{}, err
		}
		actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		resp, err := req(actx)
		cancel()
		if err == nil {
			if resp.status >= 200 && resp.status <= 299 {
				return resp, nil
			}
			err = statusError(resp)
		}
		if cerr := ctx.Err(); cerr != nil {
			if errors.Is(err, cerr) {
				return response{}, fmt.Errorf("dps: %s: %w", what, err)
			}
			return response{}, fmt.Errorf("dps: %s: %w (last error: %w)", what, cerr, err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			// The attempt's own timeout, not the caller's: retry it. The
			// context error is flattened to text, or package retry would
			// take it for the caller's deadline.
			err = retry.Transient(fmt.Errorf("attempt timed out after %s: %v", c.cfg.RequestTimeout, err))
		}
		wait, final := sched.Next(err)
		if final != nil {
			return response{}, fmt.Errorf("dps: %s: %w", what, final)
		}
		c.log.Info("dps: retrying", "op", what, "wait", wait, "err", err)
		if err := c.sleep(ctx, wait); err != nil {
			return response{}, err
		}
	}
}

// statusError turns a non-2xx answer into a *StatusError.
func statusError(r response) *StatusError {
	w := decodeError(r.body)
	e := &StatusError{
		StatusCode:    r.status,
		ErrorCode:     int(w.ErrorCode),
		TrackingID:    w.TrackingID,
		Message:       w.Message,
		RetryAfter:    r.retryAfter,
		HasRetryAfter: r.hasRetryAfter,
	}
	if e.ErrorCode == 0 {
		e.ErrorCode = r.errorCode
	}
	return e
}

// sleep waits d on the policy's clock, or until ctx ends.
func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	t := c.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// readBody reads at most limit bytes of a response body.
func readBody(r io.Reader) ([]byte, error) {
	const limit = 1 << 20
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%w: response body larger than %d bytes", ErrBadResponse, limit)
	}
	return b, nil
}
