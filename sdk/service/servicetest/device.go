package servicetest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/porthole-iot/porthole/sdk/auth"
	"github.com/porthole-iot/porthole/sdk/internal/topic"
	"github.com/porthole-iot/porthole/sdk/stream"
)

// DeviceConfig configures a fake device.
type DeviceConfig struct {
	// HubHost is the hub's host name; DeviceID and Key (base64) the
	// device's identity and primary key.
	HubHost, DeviceID, Key string
	// Port is the MQTT/TLS port; 0 means 8883.
	Port int
	// TLSConfig trusts the hub (cloned; ServerName defaults to HubHost).
	TLSConfig *tls.Config
	// DialContext opens TCP connections (MQTT and streams); nil dials
	// directly.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Accept decides a stream request by name; nil accepts every stream.
	Accept func(streamName string) bool
	// Serve serves an accepted stream; the Device closes c after Serve
	// returns and cancels ctx on Close. nil echoes the bytes back.
	Serve func(ctx context.Context, streamName string, c net.Conn)
	// Method answers a direct method; nil answers 404 with null. payload is
	// the request's JSON; the answer must be JSON.
	Method func(name string, payload []byte) (status int, response []byte)
	// Logger receives debug logs; nil discards.
	Logger *slog.Logger
}

// Device is a connected fake device. Close disconnects it.
type Device struct {
	cfg    DeviceConfig
	log    *slog.Logger
	client mqtt.Client

	ctx    context.Context // cancelled by Close; parent of stream handlers
	cancel context.CancelFunc
	wg     sync.WaitGroup // stream handler goroutines, started by onStream, waited by Close

	mu       sync.Mutex
	closed   bool                  // guarded by mu
	conns    map[net.Conn]struct{} // guarded by mu: open stream conns, closed by Close
	requests []string              // guarded by mu: stream names requested, in order
	accepted int                   // guarded by mu: streams that reached Serve
}

// ErrClosed is returned for operations on a closed Device.
var ErrClosed = errors.New("servicetest: device closed")

// StartDevice connects the device and subscribes to stream requests and
// direct methods. ctx bounds the connection only.
func StartDevice(ctx context.Context, cfg DeviceConfig) (*Device, error) {
	if cfg.Port == 0 {
		cfg.Port = 8883
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Device{cfg: cfg, log: log, conns: map[net.Conn]struct{}{}}
	d.ctx, d.cancel = context.WithCancel(context.Background())

	tok, err := auth.DeviceToken(cfg.HubHost, cfg.DeviceID, "", cfg.Key, time.Now().Add(time.Hour))
	if err != nil {
		d.cancel()
		return nil, err
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSConfig != nil {
		tlsCfg = cfg.TLSConfig.Clone()
	}
	if tlsCfg.ServerName == "" {
		tlsCfg.ServerName = cfg.HubHost
	}
	addr := net.JoinHostPort(cfg.HubHost, fmt.Sprint(cfg.Port))
	opts := mqtt.NewClientOptions().
		AddBroker("ssl://" + addr).
		SetClientID(cfg.DeviceID).
		SetProtocolVersion(4).
		SetUsername(topic.HubUser{Host: cfg.HubHost, DeviceID: cfg.DeviceID, ClientType: "porthole-servicetest"}.Username()).
		SetPassword(tok).
		SetCleanSession(false).
		SetKeepAlive(60 * time.Second).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(20 * time.Second).
		SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
			dial := cfg.DialContext
			if dial == nil {
				dial = (&net.Dialer{}).DialContext
			}
			dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			raw, err := dial(dctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(raw, tlsCfg)
			if err := tc.HandshakeContext(dctx); err != nil {
				raw.Close()
				return nil, err
			}
			return tc, nil
		})
	d.client = mqtt.NewClient(opts)
	if err := wait(ctx, d.client.Connect()); err != nil {
		d.cancel()
		return nil, fmt.Errorf("servicetest: connect %s: %w", cfg.DeviceID, err)
	}
	subs := map[string]byte{topic.SubStreamRequests: 0, topic.SubMethods: 0}
	if err := wait(ctx, d.client.SubscribeMultiple(subs, d.onMessage)); err != nil {
		d.client.Disconnect(0)
		d.cancel()
		return nil, fmt.Errorf("servicetest: subscribe: %w", err)
	}
	return d, nil
}

func wait(ctx context.Context, t mqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Requests lists the stream names requested so far.
func (d *Device) Requests() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.requests...)
}

// Accepted counts the streams that reached Serve.
func (d *Device) Accepted() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.accepted
}

// onMessage runs on paho's goroutine: it must not block for long.
func (d *Device) onMessage(_ mqtt.Client, m mqtt.Message) {
	if r, err := topic.ParseStreamRequest(m.Topic()); err == nil {
		d.onStream(r)
		return
	}
	if r, err := topic.ParseMethodRequest(m.Topic()); err == nil {
		status, resp := 404, []byte("null")
		if d.cfg.Method != nil {
			status, resp = d.cfg.Method(r.Name, m.Payload())
		}
		d.client.Publish(topic.MethodResponse(r.RID, status), 0, false, resp)
		return
	}
	d.log.Debug("unexpected message", "topic", m.Topic())
}

func (d *Device) onStream(r topic.StreamRequest) {
	d.mu.Lock()
	d.requests = append(d.requests, r.Name)
	closed := d.closed
	if !closed {
		d.wg.Add(1)
	}
	d.mu.Unlock()
	if closed {
		return
	}
	accept := d.cfg.Accept == nil || d.cfg.Accept(r.Name)
	status := 200
	if !accept {
		status = 400
	}
	d.client.Publish(topic.StreamResponse(r.RID, status), 0, false, []byte{})
	if !accept {
		d.wg.Done()
		return
	}
	go func() {
		defer d.wg.Done()
		d.serve(r)
	}()
}

// serve connects an accepted stream and serves it. Owned by Device.wg.
func (d *Device) serve(r topic.StreamRequest) {
	opts := stream.DialOptions{TLSConfig: d.cfg.TLSConfig, NetDialContext: d.cfg.DialContext}
	c, err := stream.Dial(d.ctx, r.URL, r.Auth, opts)
	if err != nil {
		d.log.Debug("stream dial failed", "stream", r.Name, "err", err)
		return
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		c.Close()
		return
	}
	d.conns[c] = struct{}{}
	d.accepted++
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.conns, c)
		d.mu.Unlock()
		c.Close()
	}()
	if d.cfg.Serve != nil {
		d.cfg.Serve(d.ctx, r.Name, c)
		return
	}
	_, _ = io.Copy(c, c)
}

// Close disconnects the device, closes its streams and waits for their
// handlers. Idempotent.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	for c := range d.conns {
		c.Close()
	}
	d.mu.Unlock()
	d.cancel()
	d.client.Disconnect(100)
	d.wg.Wait()
	return nil
}
