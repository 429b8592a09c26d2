package service

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/porthole-iot/porthole/sdk/stream"
)

// Client talks to one IoT hub's service API as a shared access policy:
// device streams, direct methods, twins and the device registry. It is safe
// for concurrent use. It starts no goroutines; Close drops its idle
// connections.
type Client struct {
	rest *restClient
}

// New returns a Client for the hub named in cfg.ConnectionString.
func New(cfg Config) (*Client, error) {
	r, err := newRESTClient(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{rest: r}, nil
}

// HostName returns the hub's host name as the connection string gives it.
func (c *Client) HostName() string { return c.rest.host }

// Close releases idle connections. Streams already opened stay open.
// It is idempotent and always returns nil.
func (c *Client) Close() error {
	c.rest.close()
	return nil
}

// streamOptions are set by StreamOption.
type streamOptions struct {
	connectTimeout  time.Duration
	responseTimeout time.Duration
	moduleID        string
}

// StreamOption changes how OpenStream asks for a stream.
type StreamOption func(*streamOptions)

// WithConnectTimeout sets how long the streaming endpoint waits for both
// sides to connect (iothub-streaming-connect-timeout-in-seconds, whole
// seconds, rounded up); default DefaultStreamTimeout.
func WithConnectTimeout(d time.Duration) StreamOption {
	return func(o *streamOptions) { o.connectTimeout = d }
}

// WithResponseTimeout sets how long the hub waits for the device to accept
// or reject (iothub-streaming-response-timeout-in-seconds); default
// DefaultStreamTimeout.
func WithResponseTimeout(d time.Duration) StreamOption {
	return func(o *streamOptions) { o.responseTimeout = d }
}

// WithModule asks a module of the device instead of the device itself.
func WithModule(moduleID string) StreamOption {
	return func(o *streamOptions) { o.moduleID = moduleID }
}

// StreamGrant is the hub's answer to an accepted stream request: where the
// service side connects and with which token. String hides the token.
type StreamGrant struct {
	URL   string
	Token string
}

// String describes the grant without its token.
func (g StreamGrant) String() string { return "StreamGrant{URL: " + g.URL + ", Token: …}" }

// ceilSeconds renders d as whole seconds, rounded up, at least 1.
func ceilSeconds(d time.Duration) string {
	s := int64(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

// RequestStream asks the device to accept a stream named streamName and
// returns the hub's grant without connecting. Most callers want OpenStream.
//
// It returns ErrStreamRejected when the device said no, and an *Error for a
// failed request: 404 DeviceNotOnline (ErrDeviceNotOnline), 429
// (ErrThrottled), 504 (ErrTimeout: no answer in time) and so on.
func (c *Client) RequestStream(ctx context.Context, deviceID, streamName string, opts ...StreamOption) (StreamGrant, error) {
	o := streamOptions{connectTimeout: DefaultStreamTimeout, responseTimeout: DefaultStreamTimeout}
	for _, f := range opts {
		f(&o)
	}
	if deviceID == "" || streamName == "" || strings.Contains(streamName, "/") {
		return StreamGrant{}, fmt.Errorf("%w: device id %q, stream name %q", ErrConfig, deviceID, streamName)
	}
	// POST /twins/{id}[/modules/{m}]/streams/{name}, no body.
	// [Azure/azure-iot-sdk-csharp iothub/service/src/AmqpServiceClient.cs@preview_2020-10-14],
	// [Azure/azure-iot-sdk-node service/src/client.ts@streams-preview]
	segs := []string{"twins", deviceID}
	if o.moduleID != "" {
		segs = append(segs, "modules", o.moduleID)
	}
	segs = append(segs, "streams", streamName)
	// The hub holds the request until the device answers: bound it by the
	// response timeout plus slack for the round trip.
	ctx, cancel := context.WithTimeout(ctx, o.responseTimeout+15*time.Second)
	defer cancel()
	_, h, err := c.rest.do(ctx, request{
		method:     http.MethodPost,
		path:       escapePath(segs...),
		apiVersion: apiVersionStreams,
		header: http.Header{
			hdrStreamConnectTimeout:  {ceilSeconds(o.connectTimeout)},
			hdrStreamResponseTimeout: {ceilSeconds(o.responseTimeout)},
		},
	})
	if err != nil {
		return StreamGrant{}, fmt.Errorf("service: stream %q to %s: %w", streamName, deviceID, err)
	}
	if !strings.EqualFold(strings.TrimSpace(h.Get(hdrStreamIsAccepted)), streamAccepted) {
		if h.Get(hdrStreamIsAccepted) == "" {
			return StreamGrant{}, protocolError("stream %q to %s: no %s header", streamName, deviceID, hdrStreamIsAccepted)
		}
		return StreamGrant{}, fmt.Errorf("stream %q to %s: %w", streamName, deviceID, ErrStreamRejected)
	}
	g := StreamGrant{URL: h.Get(hdrStreamURL), Token: h.Get(hdrStreamAuthToken)}
	if g.URL == "" || g.Token == "" {
		return StreamGrant{}, protocolError("stream %q to %s: accepted without URL or token", streamName, deviceID)
	}
	return g, nil
}

// OpenStream asks the device for a stream named streamName (for porthole
// agents, "ssh" or another configured target) and, once the device
// accepts, connects to the streaming endpoint. The returned Conn carries
// the stream's bytes; close it when done.
//
// Errors: ErrStreamRejected when the device said no; an *Error for a failed
// request (ErrDeviceNotOnline, ErrThrottled, ErrTimeout …, classified by
// sdk/retry); a *stream.HandshakeError when the streaming endpoint refused
// the WebSocket.
func (c *Client) OpenStream(ctx context.Context, deviceID, streamName string, opts ...StreamOption) (*stream.Conn, error) {
	g, err := c.RequestStream(ctx, deviceID, streamName, opts...)
	if err != nil {
		return nil, err
	}
	conn, err := c.DialStream(ctx, g, opts...)
	if err != nil {
		return nil, fmt.Errorf("service: stream %q to %s: %w", streamName, deviceID, err)
	}
	c.rest.log.Debug("stream open", "device", deviceID, "stream", streamName)
	return conn, nil
}

// DialStream connects to the streaming endpoint of a grant from
// RequestStream, with the client's TLS settings, proxy and dialer; the
// connect timeout (WithConnectTimeout) bounds the handshake. OpenStream is
// RequestStream then DialStream; callers that want the grant's URL (its
// last segment is the hub's stream id) call the two themselves.
func (c *Client) DialStream(ctx context.Context, g StreamGrant, opts ...StreamOption) (*stream.Conn, error) {
	o := streamOptions{connectTimeout: DefaultStreamTimeout}
	for _, f := range opts {
		f(&o)
	}
	dopt := c.rest.dialOpt
	dopt.HandshakeTimeout = o.connectTimeout
	return stream.Dial(ctx, g.URL, g.Token, dopt)
}

// methodRequest is the direct-method body.
// [Azure/azure-iot-sdk-node service/src/device_method.ts],
// [Azure/azure-iot-sdk-csharp iothub/service/src/DirectMethod/CloudToDeviceMethod.cs]
type methodRequest struct {
	MethodName               string          `json:"methodName"`
	ResponseTimeoutInSeconds int             `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  int             `json:"connectTimeoutInSeconds"`
	Payload                  json.RawMessage `json:"payload"`
}

// methodResult is the hub's answer.
// [Azure/azure-iot-sdk-csharp iothub/service/src/DirectMethod/CloudToDeviceMethodResult.cs]
type methodResult struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// methodPayload turns InvokeMethod's payload into JSON: nil is null,
// json.RawMessage and []byte must already be JSON, anything else is
// marshalled.
func methodPayload(payload any) (json.RawMessage, error) {
	var raw []byte
	switch p := payload.(type) {
	case nil:
		return json.RawMessage("null"), nil
	case json.RawMessage:
		raw = p
	case []byte:
		raw = p
	default:
		b, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("service: method payload: %w", err)
		}
		return b, nil
	}
	if len(raw) == 0 {
		return json.RawMessage("null"), nil
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%w: method payload is not JSON", ErrConfig)
	}
	return json.RawMessage(raw), nil
}

// InvokeMethod calls the direct method on the device and returns the status
// and payload the device answered with. timeout is how long the hub waits
// for the answer (0: DefaultMethodTimeout; clamped to 5 s–300 s); the device
// must be connected now (connectTimeoutInSeconds 0), else the hub answers 404
// DeviceNotOnline (ErrDeviceNotOnline). payload is sent as JSON: nil as
// null, json.RawMessage and []byte as they are (they must be JSON).
func (c *Client) InvokeMethod(ctx context.Context, deviceID, method string, payload any, timeout time.Duration) (status int, response json.RawMessage, err error) {
	if deviceID == "" || method == "" {
		return 0, nil, fmt.Errorf("%w: device id %q, method %q", ErrConfig, deviceID, method)
	}
	p, err := methodPayload(payload)
	if err != nil {
		return 0, nil, err
	}
	if timeout <= 0 {
		timeout = DefaultMethodTimeout
	}
	timeout = min(max(timeout, MinMethodTimeout), MaxMethodTimeout)
	secs := int(math.Ceil(timeout.Seconds()))
	ctx, cancel := context.WithTimeout(ctx, timeout+15*time.Second)
	defer cancel()
	var res methodResult
	_, _, err = c.rest.do(ctx, request{
		method:     http.MethodPost,
		path:       escapePath("twins", deviceID, "methods"),
		apiVersion: apiVersionHub,
		body:       methodRequest{MethodName: method, ResponseTimeoutInSeconds: secs, Payload: p},
		out:        &res,
	})
	if err != nil {
		return 0, nil, fmt.Errorf("service: method %q on %s: %w", method, deviceID, err)
	}
	if len(res.Payload) == 0 {
		res.Payload = json.RawMessage("null")
	}
	return res.Status, res.Payload, nil
}
