package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/relay"
)

// pendingCall is a method or stream request waiting for the device's answer.
type pendingCall struct {
	sess *session
	kind string          // "method" or "stream"
	ch   chan callResult // cap 1; receives exactly one result
}

type callResult struct {
	status  int
	payload []byte
	err     error
}

// resolve hands a result to a pending call and forgets it; false when there
// is no such call (finished, timed out, or of another kind).
func (h *Hub) resolve(key, kind string, r callResult) bool {
	h.mu.Lock()
	pc, ok := h.pending[key]
	if !ok || (kind != "" && pc.kind != kind) {
		h.mu.Unlock()
		return false
	}
	delete(h.pending, key)
	h.mu.Unlock()
	pc.ch <- r
	return true
}

func (h *Hub) forget(key string) {
	h.mu.Lock()
	delete(h.pending, key)
	h.mu.Unlock()
}

// nextRIDLocked returns a short decimal request id; the C SDK keeps stream
// rids in a small buffer [Azure/azure-iot-sdk-c iothubtransport_mqtt_common.c@public-preview-DeviceStreaming
// (MAX_STREAM_REQUEST_ID_SIZE)].
func (h *Hub) nextRIDLocked() string {
	h.ridSeq++
	return strconv.FormatUint(h.ridSeq, 10)
}

// validTopicLevel reports whether a method or stream name can be one MQTT topic level.
func validTopicLevel(name string) bool {
	return name != "" && !strings.ContainsAny(name, "/#+?&\x00")
}

// waitOnline waits until the identity has a connection subscribed to filter,
// for at most wait (zero: do not wait). It returns with h.mu held.
func (h *Hub) waitOnlineLocked(ctx context.Context, deviceID, moduleID, filter string, wait time.Duration) (*identity, *session, error) {
	var expired chan struct{}
	for {
		id, err := h.identityLocked(deviceID, moduleID)
		if err != nil {
			return nil, nil, err
		}
		if h.closed {
			return nil, nil, ErrClosed
		}
		if s := id.sess; s != nil && !s.gone && s.subscribedLocked(filter) {
			return id, s, nil
		}
		if wait <= 0 {
			return nil, nil, fmt.Errorf("%w: %s", ErrDeviceNotOnline, id.key())
		}
		if expired == nil {
			expired = make(chan struct{})
			stop := h.set.after(wait, func() { close(expired) })
			defer stop()
		}
		changed := h.changed
		h.mu.Unlock()
		select {
		case <-changed:
		case <-expired:
			wait = 0
		case <-ctx.Done():
			h.mu.Lock()
			return nil, nil, ctx.Err()
		}
		h.mu.Lock()
	}
}

// InvokeMethod calls a direct method on a connected device or module and
// returns its answer. The device must be subscribed to "$iothub/methods/POST/#"
// (else ErrDeviceNotOnline, REST 404103 — after waiting up to
// ConnectTimeoutInSeconds); no answer within ResponseTimeoutInSeconds gives
// ErrTimeout (REST 504101).
func (h *Hub) InvokeMethod(ctx context.Context, deviceID, moduleID string, req MethodRequest) (MethodResult, error) {
	h.counters.methodCalls.Add(1)
	if !validName(req.MethodName) {
		return MethodResult{}, fmt.Errorf("%w: %s", ErrInvalid, nameError("method", req.MethodName))
	}
	resp := h.set.cfg.MethodDefaultTimeout
	if req.ResponseTimeoutInSeconds != 0 {
		if req.ResponseTimeoutInSeconds < methodMinTimeoutSeconds || req.ResponseTimeoutInSeconds > methodMaxTimeoutSeconds {
			return MethodResult{}, fmt.Errorf("%w: responseTimeoutInSeconds must be %d to %d", ErrInvalid, methodMinTimeoutSeconds, methodMaxTimeoutSeconds)
		}
		resp = time.Duration(req.ResponseTimeoutInSeconds) * time.Second
	}
	if req.ConnectTimeoutInSeconds < 0 || req.ConnectTimeoutInSeconds > methodMaxTimeoutSeconds {
		return MethodResult{}, fmt.Errorf("%w: connectTimeoutInSeconds must be 0 to %d", ErrInvalid, methodMaxTimeoutSeconds)
	}
	payload := req.Payload
	if len(payload) > MaxMethodPayloadBytes {
		return MethodResult{}, fmt.Errorf("%w: method payload of %d bytes is over Azure's limit of %d", ErrTooLarge, len(payload), MaxMethodPayloadBytes)
	}
	if len(strings.TrimSpace(string(payload))) == 0 {
		// A method without payload is sent as JSON null (PROTOCOL.md §12:
		// the Node device SDK JSON.parses the request body).
		payload = []byte("null")
	} else if !json.Valid(payload) {
		return MethodResult{}, fmt.Errorf("%w: method payload is not JSON", ErrInvalid)
	}

	h.mu.Lock()
	_, s, err := h.waitOnlineLocked(ctx, deviceID, moduleID, topicMethodPost+"#", time.Duration(req.ConnectTimeoutInSeconds)*time.Second)
	if err != nil {
		h.mu.Unlock()
		return MethodResult{}, err
	}
	rid := h.nextRIDLocked()
	key := s.key() + "|" + rid
	pc := &pendingCall{sess: s, kind: "method", ch: make(chan callResult, 1)}
	h.pending[key] = pc
	topic := topicMethodPost + req.MethodName + "/?" + qRID + "=" + rid
	ok := s.enqueueLocked(outMsg{topic: topic, payload: payload, qos: 0,
		onErr: func(error) { h.resolve(key, "method", callResult{err: ErrDeviceNotOnline}) }})
	if !ok {
		delete(h.pending, key)
		h.mu.Unlock()
		return MethodResult{}, fmt.Errorf("%w: %s", ErrDeviceNotOnline, s.key())
	}
	h.mu.Unlock()
	s.logger().Debug("method invoked", "rid", rid, "method", req.MethodName)

	stop := h.set.after(resp, func() { h.resolve(key, "method", callResult{err: ErrTimeout}) })
	defer stop()
	select {
	case r := <-pc.ch:
		if r.err != nil {
			return MethodResult{}, fmt.Errorf("%w: method %s on %s", r.err, req.MethodName, s.key())
		}
		return MethodResult{Status: r.status, Payload: r.payload}, nil
	case <-ctx.Done():
		h.forget(key)
		return MethodResult{}, ctx.Err()
	}
}

// defaultStreamResponseTimeout applies when the service sends no
// iothub-streaming-response-timeout-in-seconds (the Node preview client
// always sends 30 [Azure/azure-iot-sdk-node service/src/client.ts@streams-preview]).
const defaultStreamResponseTimeout = 30 * time.Second

// ErrNoRelay means the set has no streaming endpoint configured.
var ErrNoRelay = errors.New("hub: no streaming endpoint configured")

// RequestStream asks a device to open a stream: it creates the stream at the
// relay, publishes "$iothub/streams/POST/<name>/?$rid=…&$url=…&$auth=…" and
// waits for "$iothub/streams/res/<status>/?$rid=…". A rejection or timeout
// cancels the relay stream.
func (h *Hub) RequestStream(ctx context.Context, req StreamRequest) (StreamResult, error) {
	ev := StreamEvent{Hub: h.host, DeviceID: req.DeviceID, ModuleID: req.ModuleID, Name: req.Name}
	emit := func(event string, status int, reason string) {
		if h.set.cfg.StreamLog != nil {
			e := ev
			e.Time, e.Event, e.Status, e.Reason = h.now(), event, status, reason
			h.set.cfg.StreamLog(e)
		}
	}
	if !validName(req.Name) {
		return StreamResult{}, fmt.Errorf("%w: %s", ErrInvalid, nameError("stream", req.Name))
	}
	rl := h.set.cfg.Relay
	if rl == nil {
		return StreamResult{}, ErrNoRelay
	}
	respTimeout := req.ResponseTimeout
	if respTimeout <= 0 {
		respTimeout = defaultStreamResponseTimeout
	}
	emit("requested", 0, "")
	if f := h.set.cfg.Faults; f != nil && f.StreamRequest != nil {
		delay, reject := f.StreamRequest(h.host, req.DeviceID, req.Name)
		if !h.sleep(ctx, nil, delay) {
			emit("failed", 0, "service request cancelled")
			return StreamResult{}, ctx.Err()
		}
		if reject {
			emit("rejected", 0, "rejected by fault injection")
			return StreamResult{Accepted: false}, nil
		}
	}

	h.mu.Lock()
	_, s, err := h.waitOnlineLocked(ctx, req.DeviceID, req.ModuleID, topicStreamPost+"#", 0)
	h.mu.Unlock()
	if err != nil {
		emit("offline", 0, err.Error())
		return StreamResult{}, err
	}
	ticket, err := rl.Create(relay.StreamSpec{Hub: h.host, HubName: h.name, DeviceID: req.DeviceID, ModuleID: req.ModuleID,
		Name: req.Name, Policy: req.Policy, HandshakeTimeout: req.ConnectTimeout})
	if err != nil {
		emit("failed", 0, err.Error())
		if errors.Is(err, relay.ErrThrottled) {
			return StreamResult{}, fmt.Errorf("%w: %w", ErrThrottled, err)
		}
		return StreamResult{}, fmt.Errorf("hub: relay: %w", err)
	}
	ev.StreamID = ticket.ID
	// $auth is used raw by the C device client, so it must stay within the
	// unreserved characters (PROTOCOL.md §15).
	if ticket.DeviceToken == "" || pctEncode(ticket.DeviceToken) != ticket.DeviceToken {
		rl.Cancel(ticket.ID, "device token not URL-safe")
		emit("failed", 0, "relay device token has reserved characters")
		return StreamResult{}, errors.New("hub: relay device token has reserved characters")
	}

	h.mu.Lock()
	if s.gone || s.id == nil || s.id.sess != s || !s.subscribedLocked(topicStreamPost+"#") {
		h.mu.Unlock()
		rl.Cancel(ticket.ID, "device went offline")
		emit("offline", 0, "device went offline")
		return StreamResult{}, fmt.Errorf("%w: %s", ErrDeviceNotOnline, s.key())
	}
	rid := h.nextRIDLocked()
	key := s.key() + "|" + rid
	pc := &pendingCall{sess: s, kind: "stream", ch: make(chan callResult, 1)}
	h.pending[key] = pc
	topic := topicStreamPost + req.Name + "/?" + qRID + "=" + rid + "&" + qURL + "=" + pctEncode(ticket.URL) + "&" + qAuth + "=" + ticket.DeviceToken
	s.enqueueLocked(outMsg{topic: topic, qos: 0,
		onErr: func(error) { h.resolve(key, "stream", callResult{err: ErrDeviceNotOnline}) }})
	h.mu.Unlock()
	s.logger().Debug("stream requested", "rid", rid, "stream", ticket.ID)

	stop := h.set.after(respTimeout, func() { h.resolve(key, "stream", callResult{err: ErrTimeout}) })
	defer stop()
	var r callResult
	select {
	case r = <-pc.ch:
	case <-ctx.Done():
		h.forget(key)
		rl.Cancel(ticket.ID, "service request cancelled")
		emit("failed", 0, "service request cancelled")
		return StreamResult{}, ctx.Err()
	}
	switch {
	case r.err != nil:
		reason := r.err.Error()
		rl.Cancel(ticket.ID, reason)
		if errors.Is(r.err, ErrTimeout) {
			emit("timeout", 0, reason)
		} else {
			emit("offline", 0, reason)
		}
		return StreamResult{}, fmt.Errorf("%w: stream %s on %s", r.err, req.Name, s.key())
	case r.status == 200:
		rl.Accepted(ticket.ID)
		emit("accepted", r.status, "")
		return StreamResult{Accepted: true, StreamID: ticket.ID, URL: ticket.URL, ServiceToken: ticket.ServiceToken}, nil
	default:
		reason := fmt.Sprintf("rejected by device with status %d", r.status)
		rl.Cancel(ticket.ID, reason)
		emit("rejected", r.status, reason)
		return StreamResult{Accepted: false, StreamID: ticket.ID}, nil
	}
}

// Disconnect force-drops a device's (moduleID empty) or module's connection;
// false when it is not connected.
func (h *Hub) Disconnect(deviceID, moduleID string) bool {
	h.mu.Lock()
	id, err := h.identityLocked(deviceID, moduleID)
	var s *session
	if err == nil {
		s = id.sess
	}
	h.mu.Unlock()
	if s == nil {
		return false
	}
	s.kick("disconnected by hubsim")
	return true
}

// Connected reports whether a device or module has a live connection.
func (h *Hub) Connected(deviceID, moduleID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	id, err := h.identityLocked(deviceID, moduleID)
	return err == nil && id.sess != nil
}

// close disconnects every connection, fails pending calls and waits.
func (h *Hub) close() {
	h.mu.Lock()
	h.closed = true
	var sessions []*session
	for s := range h.sessions {
		sessions = append(sessions, s)
	}
	pend := h.pending
	h.pending = map[string]*pendingCall{}
	h.notifyLocked()
	h.mu.Unlock()
	h.taps.closeAll()
	for _, pc := range pend {
		pc.ch <- callResult{err: ErrClosed}
	}
	for _, s := range sessions {
		s.out.Close()
		s.stop()
	}
}
