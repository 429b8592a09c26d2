package dps

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/cenkalti/backoff/v4"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/gorilla/websocket"

	"github.com/porthole-iot/porthole/sdk/internal/topic"
	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/stream"
)

// errConnectionLost: the MQTT connection dropped while a request waited.
var errConnectionLost = errors.New("mqtt connection lost")

// mqttSession speaks DPS's MQTT API (MicrosoftDocs/azure-docs
// articles/iot/iot-mqtt-connect-to-iot-dps.md; Azure/azure-iot-sdk-c
// provisioning_client/src/prov_transport_mqtt_common.c; Azure/azure-iot-sdk-node
// provisioning/transport/mqtt/src/mqtt.ts): client ID = registration ID,
// clean session, subscribe `$dps/registrations/res/#`, publish register and
// poll requests with a `$rid` and match answers by it.
//
// It connects lazily on the first request and again after any failure, so
// a retried request gets a fresh connection. Requests are issued by the
// single goroutine running Register; paho's goroutines deliver answers
// through waiters.
type mqttSession struct {
	c *Client

	// Owned by the goroutine running Register.
	client paho.Client   // nil when not connected
	lost   chan struct{} // closed when client's connection drops
	rid    uint64        // last $rid used

	mu      sync.Mutex
	waiters map[string]chan mqttAnswer // guarded by mu; $rid → answer slot (buffered 1)
}

type mqttAnswer struct {
	res  topic.DPSResponse
	body []byte
}

func newMQTTSession(c *Client) *mqttSession {
	return &mqttSession{c: c, waiters: map[string]chan mqttAnswer{}}
}

func (s *mqttSession) register(ctx context.Context, body []byte) (response, error) {
	// Node and C send the DeviceRegistration JSON (registrationId and
	// optional payload) at QoS 1 (Node mqtt.ts).
	return s.request(ctx, topic.DPSRegister, body)
}

func (s *mqttSession) poll(ctx context.Context, operationID string) (response, error) {
	// C# sends an empty poll payload (Azure/azure-iot-sdk-csharp
	// provisioning/transport/mqtt/src/ProvisioningChannelHandlerAdapter.cs).
	return s.request(ctx, func(rid string) string { return topic.DPSPoll(rid, operationID) }, nil)
}

func (s *mqttSession) close() { s.drop() }

// drop disconnects, if connected. paho's Disconnect waits for its workers.
func (s *mqttSession) drop() {
	if s.client == nil {
		return
	}
	s.client.Disconnect(mqttQuiesce)
	s.client, s.lost = nil, nil
}

func (s *mqttSession) request(ctx context.Context, topicFor func(rid string) string, payload []byte) (response, error) {
	if s.client != nil {
		select {
		case <-s.lost:
			s.drop()
		default:
		}
	}
	if s.client == nil {
		if err := s.connect(ctx); err != nil {
			return response{}, err
		}
	}
	s.rid++
	rid := strconv.FormatUint(s.rid, 10)
	slot := make(chan mqttAnswer, 1)
	s.mu.Lock()
	s.waiters[rid] = slot
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, rid)
		s.mu.Unlock()
	}()

	t := topicFor(rid)
	tok := s.client.Publish(t, 1, false, payload)
	if err := s.wait(ctx, tok); err != nil {
		s.drop()
		return response{}, fmt.Errorf("mqtt publish: %w", err)
	}
	select {
	case a := <-slot:
		r := response{status: a.res.Status, body: a.body}
		if a.res.RetryAfter != "" {
			r.retryAfter, r.hasRetryAfter = retry.ParseRetryAfter(a.res.RetryAfter, s.c.cfg.Now())
		}
		s.c.log.Debug("dps: mqtt answer", "rid", rid, "status", a.res.Status)
		return r, nil
	case <-s.lost:
		s.drop()
		return response{}, retry.Transient(errConnectionLost)
	case <-ctx.Done():
		// The connection may be wedged; start afresh on the next attempt.
		s.drop()
		return response{}, fmt.Errorf("mqtt: waiting for the answer: %w", ctx.Err())
	}
}

// wait waits for a paho token, the connection's loss, or ctx.
func (s *mqttSession) wait(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return retry.Transient(err)
		}
		return nil
	case <-s.lost:
		return retry.Transient(errConnectionLost)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// onMessage hands an answer to the request waiting for its $rid. It runs
// on paho's router goroutine and never blocks.
func (s *mqttSession) onMessage(_ paho.Client, m paho.Message) {
	res, err := topic.ParseDPSResponse(m.Topic())
	if err != nil {
		s.c.log.Warn("dps: unexpected mqtt message", "err", err)
		return
	}
	s.mu.Lock()
	slot := s.waiters[res.RID]
	s.mu.Unlock()
	if slot == nil {
		s.c.log.Debug("dps: mqtt answer nobody waits for", "rid", res.RID)
		return
	}
	select {
	case slot <- mqttAnswer{res: res, body: append([]byte(nil), m.Payload()...)}:
	default: // a duplicate (QoS 1 redelivery); the first one counts
	}
}

// connect opens the MQTT connection and subscribes to the answers.
func (s *mqttSession) connect(ctx context.Context) error {
	c := s.c
	user := topic.DPSUser{
		IDScope:        c.cfg.IDScope,
		RegistrationID: c.cfg.RegistrationID,
		APIVersion:     c.cfg.APIVersion,
		ClientVersion:  userAgent,
	}
	opts := paho.NewClientOptions()
	scheme := "tls"
	if c.cfg.Transport == TransportMQTTWS {
		scheme = "wss"
	}
	opts.AddBroker((&url.URL{Scheme: scheme, Host: net.JoinHostPort(c.host, c.port)}).String())
	opts.SetClientID(c.cfg.RegistrationID)
	opts.SetUsername(user.Username())
	if c.signer != nil {
		tok, _, err := c.signer.Sign(sasTTL)
		if err != nil {
			return fmt.Errorf("sign: %w", err)
		}
		opts.SetPassword(tok)
	}
	// DPS keeps no sessions; clean session true is recommended
	// (MicrosoftDocs/azure-docs articles/iot/iot-mqtt-connect-to-iot-dps.md).
	opts.SetCleanSession(true)
	opts.SetProtocolVersion(4) // MQTT 3.1.1, no fallback to 3.1
	opts.SetAutoReconnect(false)
	opts.SetConnectRetry(false)
	opts.SetKeepAlive(mqttKeepAlive)
	opts.SetConnectTimeout(c.cfg.RequestTimeout)
	opts.SetWriteTimeout(c.cfg.RequestTimeout)

	lost := make(chan struct{})
	var lostOnce sync.Once
	opts.SetConnectionLostHandler(func(paho.Client, error) { lostOnce.Do(func() { close(lost) }) })

	// The connection paho uses is opened here, so the dial seam, the proxy
	// and ctx apply; ctx ending during the MQTT handshake closes it.
	var connMu sync.Mutex
	var conn net.Conn
	canceled := false
	opts.SetCustomOpenConnectionFn(func(*url.URL, paho.ClientOptions) (net.Conn, error) {
		nc, err := c.dialMQTT(ctx)
		if err != nil {
			return nil, err
		}
		connMu.Lock()
		defer connMu.Unlock()
		if canceled {
			nc.Close()
			return nil, ctx.Err()
		}
		conn = nc
		return nc, nil
	})
	stop := context.AfterFunc(ctx, func() {
		connMu.Lock()
		defer connMu.Unlock()
		canceled = true
		if conn != nil {
			conn.Close()
		}
	})
	defer stop()

	cl := paho.NewClient(opts)
	ctok := cl.Connect()
	<-ctok.Done() // bounded: the dial honours ctx, and ctx closes the conn
	if err := ctok.Error(); err != nil {
		// A failed Connect leaves nothing running in paho.
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("mqtt connect: %w", cerr)
		}
		return fmt.Errorf("mqtt connect: %w", classifyConnect(err))
	}
	s.client, s.lost = cl, lost

	stok := cl.Subscribe(topic.SubDPSResponses, 1, s.onMessage)
	if err := s.wait(ctx, stok); err != nil {
		s.drop()
		return fmt.Errorf("mqtt subscribe: %w", err)
	}
	if st, ok := stok.(*paho.SubscribeToken); ok {
		for _, code := range st.Result() {
			if code == 0x80 { // SUBACK failure
				s.drop()
				return fmt.Errorf("mqtt subscribe %s: %w", topic.SubDPSResponses,
					&StatusError{StatusCode: http.StatusForbidden, Message: "subscription refused"})
			}
		}
	}
	c.log.Debug("dps: mqtt connected", "transport", c.cfg.Transport)
	return nil
}

// classifyConnect maps a refused CONNECT to a StatusError with the HTTP
// numbering (not authorized → 401, server unavailable → 503) and marks
// network failures transient, keeping certificate errors and errors marked
// permanent (a proxy's 407) as they are so package retry can judge them.
func classifyConnect(err error) error {
	switch {
	case errors.Is(err, packets.ErrorRefusedNotAuthorised), errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
		return &StatusError{StatusCode: http.StatusUnauthorized, Message: "mqtt connect refused: " + err.Error()}
	case errors.Is(err, packets.ErrorRefusedIDRejected), errors.Is(err, packets.ErrorRefusedBadProtocolVersion):
		return &StatusError{StatusCode: http.StatusBadRequest, Message: "mqtt connect refused: " + err.Error()}
	case errors.Is(err, packets.ErrorRefusedServerUnavailable):
		return &StatusError{StatusCode: http.StatusServiceUnavailable, Message: "mqtt connect refused: " + err.Error()}
	}
	var sc retry.StatusCoder
	var perm *backoff.PermanentError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var certErr x509.CertificateInvalidError
	var tlsAlert tls.AlertError
	if errors.As(err, &sc) || errors.As(err, &perm) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &certErr) {
		return err
	}
	if errors.As(err, &tlsAlert) {
		// The server refused the TLS handshake (e.g. our client
		// certificate); retrying will not change that.
		return err
	}
	return retry.Transient(err)
}

// dialMQTT opens the byte stream MQTT runs over: TLS to port 8883, or a
// TLS WebSocket to /$iothub/websocket with subprotocol "mqtt".
func (c *Client) dialMQTT(ctx context.Context) (net.Conn, error) {
	addr := net.JoinHostPort(c.host, c.port)
	if c.cfg.Transport == TransportMQTT {
		var raw net.Conn
		var err error
		if c.cfg.ProxyURL != nil {
			raw, err = c.dialTunnel(ctx, addr)
		} else {
			raw, err = c.dial(ctx, "tcp", addr)
		}
		if err != nil {
			return nil, err
		}
		tc := tls.Client(raw, c.tlsConf.Clone())
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		return tc, nil
	}
	d := websocket.Dialer{
		NetDialContext:    c.dial,
		TLSClientConfig:   c.tlsConf.Clone(),
		HandshakeTimeout:  c.cfg.RequestTimeout,
		Subprotocols:      []string{wsSubprotocol},
		EnableCompression: false,
	}
	if c.cfg.ProxyURL != nil {
		d.Proxy = http.ProxyURL(c.cfg.ProxyURL)
	}
	u := url.URL{Scheme: "wss", Host: addr, Path: wsPath}
	ws, resp, err := d.DialContext(ctx, u.String(), nil)
	if err != nil {
		if resp != nil && errors.Is(err, websocket.ErrBadHandshake) {
			if resp.Body != nil {
				resp.Body.Close()
			}
			return nil, &StatusError{StatusCode: resp.StatusCode, Message: "websocket upgrade refused"}
		}
		return nil, err
	}
	return stream.NewConn(ws), nil
}
