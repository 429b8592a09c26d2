package hub

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/broker"
	"github.com/porthole-iot/porthole/hubsim/internal/ident"
	"github.com/porthole-iot/porthole/hubsim/internal/sas"
)

// AckOutbound is an optional extension of broker.Outbound: a QoS 1 publish
// whose PUBACK the hub is told about. When the broker's Outbound implements
// it, a C2D message is completed only on the device's PUBACK (and redelivered
// on the next connection otherwise); without it, a successful Publish counts
// as completion.
type AckOutbound interface {
	// PublishAcked sends at QoS 1 and calls acked exactly once: true when the
	// client's PUBACK arrived, false when the client went away first.
	PublishAcked(topic string, payload []byte, acked func(ok bool)) error
}

// ---- broker.Personality ----

// Claims reports whether username is a hub username
// "<host>/<deviceId>[/<moduleId>]/?api-version=…" for one of this set's
// hubs (any host when the set has a single hub). DPS usernames
// "<scope>/registrations/<id>/api-version=…" have no "/?" and are not claimed.
// [Azure/azure-iot-sdk-c iothub_client/src/iothubtransport_mqtt_common.c],
// [Azure/azure-iot-sdk-c provisioning_client/src/prov_transport_mqtt_common.c]
func (s *Set) Claims(username string) bool {
	host, _, _, _, ok := parseUsername(username)
	if !ok {
		return false
	}
	if _, found := s.byHost[strings.ToLower(host)]; found {
		return true
	}
	return len(s.hubs) == 1
}

// parseUsername splits "<host>/<device>[/<module>]/?<query>".
func parseUsername(u string) (host, device, module, query string, ok bool) {
	head, query, found := strings.Cut(u, "/?")
	if !found {
		return "", "", "", "", false
	}
	parts := strings.Split(head, "/")
	switch len(parts) {
	case 2:
		host, device = parts[0], parts[1]
	case 3:
		host, device, module = parts[0], parts[1], parts[2]
		if module == "" {
			return "", "", "", "", false
		}
	default:
		return "", "", "", "", false
	}
	if host == "" || device == "" {
		return "", "", "", "", false
	}
	return host, device, module, query, true
}

// Connect authenticates a device or module connection. Refusals wrap
// broker.ErrNotAuthorized (CONNACK 0x05), which is what IoT Hub answers for a
// bad, expired or unknown credential and for a disabled device (observed:
// "Connection Not Accepted: 0x5: Not Authorized" in Azure/azure-iot-sdk-c
// issues #373 and #695, Azure/iotedge #526); a username that is not a hub
// username or does not match the client id wraps broker.ErrBadCredentials (0x04).
func (s *Set) Connect(info broker.ConnectInfo, out broker.Outbound) (broker.Session, error) {
	host, devID, modID, _, ok := parseUsername(info.Username)
	if !ok {
		return nil, fmt.Errorf("%w: not a hub username", broker.ErrBadCredentials)
	}
	wantClient := devID
	if modID != "" {
		wantClient = devID + "/" + modID
	}
	if info.ClientID != wantClient {
		return nil, fmt.Errorf("%w: client id %q does not match username identity %q", broker.ErrBadCredentials, info.ClientID, wantClient)
	}
	h, ok := s.lookup(host, info.LocalAddr)
	if !ok {
		return nil, fmt.Errorf("%w: no hub %q", broker.ErrNotAuthorized, host)
	}
	return h.connect(host, devID, modID, info, out)
}

// deviceLogger is the hub's logger with the device (and module) as
// attributes.
func (h *Hub) deviceLogger(devID, modID string) *slog.Logger {
	log := h.log.With("device", devID)
	if modID != "" {
		log = log.With("module", modID)
	}
	return log
}

// logger is the session's logger. It is built for each record, not kept:
// the records are rare (disconnects, refusals, debug), and a logger with
// its formatted attributes kept per session was about 450 bytes of every
// connected device's memory at fleet scale.
func (s *session) logger() *slog.Logger { return s.hub.deviceLogger(s.deviceID, s.moduleID) }

func (h *Hub) connect(userHost, devID, modID string, info broker.ConnectInfo, out broker.Outbound) (*session, error) {
	log := h.deviceLogger(devID, modID)
	faults := h.set.cfg.Faults
	if faults != nil && faults.RefuseConnect != nil {
		if code, refuse := faults.RefuseConnect(h.host, devID); refuse {
			log.Info("connect refused by fault", "connack", code)
			return nil, &broker.RefusedError{Code: code, Reason: "refused by fault injection"}
		}
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, fmt.Errorf("%w: hub closed", broker.ErrServerUnavailable)
	}
	if !h.admitConnectLocked(h.now()) {
		h.mu.Unlock()
		log.Debug("connect throttled", "remote", info.Remote, "rate", h.set.cfg.ConnectsPerSecond)
		return nil, fmt.Errorf("%w: device connections throttled (%v/s per hub)", broker.ErrServerUnavailable, h.set.cfg.ConnectsPerSecond)
	}
	id, err := h.identityLocked(devID, modID)
	var auth ident.Auth
	var status Status
	if err == nil {
		auth = id.auth
		status = id.status
		if modID != "" {
			status = h.devices[devID].status
		}
	}
	h.mu.Unlock()
	if err != nil {
		log.Info("connect refused", "err", err)
		return nil, fmt.Errorf("%w: %v", broker.ErrNotAuthorized, err)
	}
	now := h.now()
	expiry, err := h.authenticate(userHost, devID, modID, auth, info, now)
	if err != nil {
		log.Info("connect refused", "err", err)
		return nil, fmt.Errorf("%w: %v", broker.ErrNotAuthorized, err)
	}
	if status != StatusEnabled {
		log.Info("connect refused", "err", "device disabled")
		return nil, fmt.Errorf("%w: device disabled", broker.ErrNotAuthorized)
	}

	sess := &session{hub: h, deviceID: devID, moduleID: modID, out: out, remote: info.Remote,
		subs: map[string]byte{}, done: make(chan struct{})}
	if !expiry.IsZero() {
		// Azure drops a connection when its SAS token (or certificate) expires;
		// the device must reconnect with fresh credentials
		// [doc: Understand and resolve Azure IoT Hub errors, 401003 IoTHubUnauthorized].
		sess.stopExpiry = h.set.after(expiry.Sub(now), func() { sess.kick("credential expired") })
	}
	if faults != nil && faults.DropConnection != nil {
		if after, drop := faults.DropConnection(h.host, devID); drop {
			// From a timer, not before minDropAfter, so the broker has sent
			// the CONNACK: the device sees a drop, not a failed connect.
			sess.stopDrop = h.set.after(max(after, minDropAfter), func() { sess.kick("dropped by fault injection") })
		}
	}

	h.mu.Lock()
	id2, err := h.identityLocked(devID, modID)
	if h.closed || err != nil || id2 != id {
		h.mu.Unlock()
		sess.stop()
		return nil, fmt.Errorf("%w: identity changed during connect", broker.ErrNotAuthorized)
	}
	sess.id = id
	old := id.sess
	flapping := old != nil && id.noteTakeoverLocked(old.remote, info.Remote, now)
	id.sess = sess
	id.connUpdated = now
	id.lastActivity.store(now)
	h.persistDocLocked(id, "connect")
	if h.sessions == nil {
		h.sessions = map[*session]struct{}{}
	}
	h.sessions[sess] = struct{}{}
	h.notifyLocked()
	h.mu.Unlock()
	if old != nil {
		// IoT Hub allows one connection per identity and closes the older one
		// [doc: Understand and resolve Azure IoT Hub errors, 400027 ConnectionForcefullyClosedOnNewConnection].
		old.kick("new connection for the same identity")
	}
	if flapping {
		log.Warn("two clients with the same identity keep replacing each other",
			"remotes", []string{old.remote, info.Remote}, "takeovers", flapAfter, "max_gap", flapQuiet)
	}
	h.counters.connects.Add(1)
	log.Info("device connected", "transport", info.Transport, "remote", info.Remote)
	return sess, nil
}

// authenticate checks the CONNECT credentials and returns when they expire
// (zero: never).
func (h *Hub) authenticate(userHost, devID, modID string, a ident.Auth, info broker.ConnectInfo, now time.Time) (time.Time, error) {
	pw := string(info.Password)
	if pw != "" {
		// SAS resource: "<host>/devices/<id>[/modules/<m>]"
		// [Azure/azure-iot-sdk-node device/core/src/sak_authentication_provider.ts].
		resource := userHost + "/devices/" + devID
		if modID != "" {
			resource += "/modules/" + modID
		}
		tok, err := sas.Parse(pw)
		if err != nil {
			return time.Time{}, err
		}
		if tok.KeyName != "" {
			// A hub-level policy with DeviceConnect may sign for any device.
			if _, err := sas.VerifyPolicy(pw, resource, h.policies, sas.RightDeviceConnect, now); err != nil {
				return time.Time{}, err
			}
		} else {
			if a.Type != AuthSAS {
				return time.Time{}, fmt.Errorf("identity uses %s authentication, not sas", a.Type)
			}
			if _, err := sas.VerifyDevice(pw, resource, a.PrimaryKey, a.SecondaryKey, now); err != nil {
				return time.Time{}, err
			}
		}
		return tok.Expiry, nil
	}
	// X.509: empty password, client certificate on the TLS connection.
	if info.TLS == nil || len(info.TLS.PeerCertificates) == 0 {
		return time.Time{}, errors.New("no password and no client certificate")
	}
	leaf := info.TLS.PeerCertificates[0]
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return time.Time{}, errors.New("client certificate outside its validity period")
	}
	switch a.Type {
	case AuthSelfSigned:
		if !thumbprintMatches(leaf.Raw, a.PrimaryThumbprint) && !thumbprintMatches(leaf.Raw, a.SecondaryThumbprint) {
			return time.Time{}, errors.New("client certificate thumbprint does not match")
		}
	case AuthCertificateAuthority:
		if !h.hasCA {
			return time.Time{}, errors.New("hub has no CA certificates configured")
		}
		inter := x509.NewCertPool()
		for _, c := range info.TLS.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: h.caPool, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return time.Time{}, fmt.Errorf("client certificate chain: %w", err)
		}
		want := devID
		if modID != "" {
			want = modID
		}
		if leaf.Subject.CommonName != want {
			return time.Time{}, fmt.Errorf("client certificate CN %q is not %q", leaf.Subject.CommonName, want)
		}
	default:
		return time.Time{}, fmt.Errorf("identity uses %s authentication, not X.509", a.Type)
	}
	return leaf.NotAfter, nil
}

// thumbprintMatches compares a hex SHA-1 or SHA-256 thumbprint with a DER
// certificate, ignoring case and ':' separators.
func thumbprintMatches(der []byte, tp string) bool {
	tp = strings.ToLower(strings.ReplaceAll(tp, ":", ""))
	if tp == "" {
		return false
	}
	s1 := sha1.Sum(der)
	s2 := sha256.Sum256(der)
	for _, want := range []string{hex.EncodeToString(s1[:]), hex.EncodeToString(s2[:])} {
		if subtle.ConstantTimeCompare([]byte(want), []byte(tp)) == 1 {
			return true
		}
	}
	return false
}

// ---- session ----

// outMsg is one hub → device publish, queued in order.
type outMsg struct {
	topic   string
	payload []byte
	qos     byte
	// onErr, if non-nil, is told (with no lock held) when the publish fails.
	onErr func(error)
}

// session is one authenticated MQTT connection of a device or module.
type session struct {
	hub                *Hub
	deviceID, moduleID string
	out                broker.Outbound
	remote             string      // the client's address, as the broker reported it
	stopExpiry         func() bool // nil without expiry; set before the sender can start
	stopDrop           func() bool // nil without a DropConnection fault; set before the sender can start

	// id is set by connect before the session is handed to the broker and
	// never changes; every other field below is guarded by hub.mu.
	id    *identity
	subs  map[string]byte // granted topic filters
	queue []outMsg        // pending publishes, drained by the sender
	gone  bool            // stop has begun
	// The sender (sendRun) runs only while there is something to send, so
	// an idle connection holds no goroutine stack: wakeLocked starts it, or
	// marks woken when it runs; it exits when a pass finds nothing new.
	sending    bool
	woken      bool
	retryTimer *time.Timer // a pending C2D retry (not-yet-subscribed device)
	attempts   int         // C2D retries in a row; touched by the sender only

	done     chan struct{} // closed by stop
	wg       sync.WaitGroup
	stopOnce sync.Once
}

func (s *session) key() string {
	if s.moduleID == "" {
		return s.deviceID
	}
	return s.deviceID + "/" + s.moduleID
}

// topicPrefix is this identity's "devices/<d>/" or "devices/<d>/modules/<m>/".
func (s *session) topicPrefix() string {
	p := topicDevicesPrefix + s.deviceID + "/"
	if s.moduleID != "" {
		p += "modules/" + s.moduleID + "/"
	}
	return p
}

// subscribedLocked reports whether the connection holds exactly this filter.
func (s *session) subscribedLocked(filter string) bool {
	_, ok := s.subs[filter]
	return ok
}

// enqueueLocked queues a publish for the sender; false when the connection is
// already going away. Caller holds hub.mu.
func (s *session) enqueueLocked(m outMsg) bool {
	if s.gone {
		return false
	}
	s.queue = append(s.queue, m)
	s.wakeLocked()
	return true
}

// wakeLocked has the sender take the queues: it starts one, or tells the
// running one to make another pass. Caller holds hub.mu.
func (s *session) wakeLocked() {
	switch {
	case s.gone:
	case s.sending:
		s.woken = true
	default:
		s.sending, s.woken = true, false
		s.wg.Add(1) // stop sets gone under hub.mu before it waits
		go s.sendRun()
	}
}

// retryNow is the C2D retry timer's callback.
func (s *session) retryNow() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.retryTimer = nil
	s.wakeLocked()
}

// kick disconnects the client; the broker then calls Disconnected.
func (s *session) kick(reason string) {
	s.logger().Info("disconnecting device", "reason", reason)
	s.out.Close()
}

// stop ends the sender and the timers and waits for the sender. Idempotent.
func (s *session) stop() {
	s.stopOnce.Do(func() {
		s.hub.mu.Lock()
		s.gone = true
		if s.retryTimer != nil {
			s.retryTimer.Stop()
			s.retryTimer = nil
		}
		s.hub.mu.Unlock()
		close(s.done)
		if s.stopExpiry != nil {
			s.stopExpiry()
		}
		if s.stopDrop != nil {
			s.stopDrop()
		}
	})
	s.wg.Wait()
}

// allowedFilter reports whether this identity may subscribe to filter: its own
// C2D (devices) or inputs (modules) and the $iothub request/response topics.
// [Azure/azure-iot-sdk-c iothub_client/src/iothubtransport_mqtt_common.c],
// [Azure/azure-iot-sdk-csharp iothub/device/src/Transport/Mqtt/MqttTransportHandler.cs]
func (s *session) allowedFilter(f string) bool {
	switch f {
	case topicTwinResPrefix + "#", topicTwinPatchDesired + "#", topicMethodPost + "#",
		topicStreamPost + "#", topicStreamRes + "#":
		return true
	}
	if s.moduleID == "" {
		return f == s.topicPrefix()+segDevicebound+"#"
	}
	return f == s.topicPrefix()+"#" || f == s.topicPrefix()+"inputs/#"
}

// Subscribe grants at most QoS 1: IoT Hub does not support QoS 2 and grants 1
// instead [doc: Communicate with an IoT hub using the MQTT protocol (iot-hub-mqtt-support.md)].
func (s *session) Subscribe(filter string, qos byte) (byte, bool) {
	h := s.hub
	if !s.allowedFilter(filter) {
		h.set.recordUnhandled(h.host, "mqtt-subscribe", s.key()+": "+filter)
		return 0, false
	}
	granted := min(qos, 1)
	h.mu.Lock()
	s.subs[filter] = granted
	if s.id != nil {
		s.id.lastActivity.store(h.now())
	}
	h.notifyLocked()
	s.wakeLocked() // C2D delivery may start now
	h.mu.Unlock()
	return granted, true
}

// Unsubscribe forgets a filter.
func (s *session) Unsubscribe(filter string) {
	h := s.hub
	h.mu.Lock()
	delete(s.subs, filter)
	h.notifyLocked()
	h.mu.Unlock()
}

// Publish handles a device PUBLISH.
func (s *session) Publish(topic string, payload []byte, qos byte) error {
	h := s.hub
	if qos > 1 {
		// IoT Hub closes the connection on a QoS 2 publish [doc: iot-hub-mqtt-support.md].
		return fmt.Errorf("%w: QoS 2 is not supported", broker.ErrNotAuthorized)
	}
	if f := h.set.cfg.Faults; f != nil && f.AckDelay != nil {
		if d := f.AckDelay(h.host, s.deviceID); d > 0 && !h.sleep(context.Background(), s.done, d) {
			return nil // the connection ended while the ack was held
		}
	}
	now := h.now()
	// s.id is set by connect before the broker hands the session any
	// packet, and never changes; lastActivity needs no hub lock.
	if s.id != nil {
		s.id.lastActivity.store(now)
	}

	prefix := s.topicPrefix()
	switch {
	case strings.HasPrefix(topic, prefix+"messages/events"):
		return s.telemetry(topic, strings.TrimPrefix(topic, prefix+"messages/events"), payload, now)
	case strings.HasPrefix(topic, topicTwinGet):
		return s.twinGet(strings.TrimPrefix(topic, topicTwinGet))
	case strings.HasPrefix(topic, topicTwinPatchReported):
		return s.twinReported(strings.TrimPrefix(topic, topicTwinPatchReported), payload)
	case strings.HasPrefix(topic, topicMethodRes):
		return s.response("method", strings.TrimPrefix(topic, topicMethodRes), payload)
	case strings.HasPrefix(topic, topicStreamRes):
		return s.response("stream", strings.TrimPrefix(topic, topicStreamRes), payload)
	case strings.HasPrefix(topic, topicIoTHubPrefix):
		h.set.recordUnhandled(h.host, "mqtt-publish", s.key()+": "+topic)
		return fmt.Errorf("%w: unsupported topic %q", broker.ErrNotAuthorized, topic)
	default:
		// Another device's topic, or no hub topic at all: IoT Hub disconnects.
		return fmt.Errorf("%w: topic %q not allowed for %s", broker.ErrNotAuthorized, topic, s.key())
	}
}

// telemetry handles "devices/<id>/messages/events[/<propbag>]".
func (s *session) telemetry(topic, rest string, payload []byte, now time.Time) error {
	h := s.hub
	if rest != "" && !strings.HasPrefix(rest, "/") {
		return fmt.Errorf("%w: topic %q not allowed", broker.ErrNotAuthorized, topic)
	}
	props, err := parsePropBag(strings.TrimPrefix(rest, "/"))
	if err != nil {
		h.set.recordUnhandled(h.host, "mqtt-publish", s.key()+": bad property bag in "+topic)
		return fmt.Errorf("%w: %v", broker.ErrNotAuthorized, err)
	}
	// Body plus properties over the device-to-cloud limit: MQTT cannot
	// refuse one PUBLISH, so the connection ends (hubsim's reading of how
	// the hub treats an oversized message on MQTT).
	if n := len(payload) + len(strings.TrimPrefix(rest, "/")); n > MaxD2CMessageBytes {
		return fmt.Errorf("%w: device-to-cloud message of %d bytes is over Azure's limit of %d: %w", broker.ErrNotAuthorized, n, MaxD2CMessageBytes, ErrTooLarge)
	}
	h.counters.messagesIn.Add(1)
	if !h.taps.active() {
		return nil // nobody listens: the message is accepted and forgotten
	}
	ev := &Event{Hub: h.host, DeviceID: s.deviceID, ModuleID: s.moduleID, Time: now, Topic: topic,
		System: map[string]string{}, Properties: map[string]string{}, Body: bytes.Clone(payload)}
	for k, v := range props {
		if strings.HasPrefix(k, sysPropPrefix) {
			ev.System[k] = v
		} else {
			ev.Properties[k] = v
		}
	}
	h.taps.publish(ev)
	return nil
}

// twinGet answers "$iothub/twin/GET/?$rid=<rid>" with the twin document.
func (s *session) twinGet(query string) error {
	h := s.hub
	q, ok := parseTopicQuery(query)
	rid := q[qRID]
	if !ok || rid == "" {
		h.set.recordUnhandled(h.host, "mqtt-publish", s.key()+": twin GET without $rid")
		return nil
	}
	h.counters.twinGets.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.id == nil {
		return nil
	}
	s.enqueueLocked(outMsg{topic: topicTwinResPrefix + "200/?" + qRID + "=" + rid, payload: s.id.twin.deviceDocument(), qos: 0})
	return nil
}

// twinReported applies "$iothub/twin/PATCH/properties/reported/?$rid=<rid>"
// and answers "res/204/?$rid=<rid>&$version=<v>" with an empty body, or
// "res/400/?$rid=<rid>" with an error body.
func (s *session) twinReported(query string, payload []byte) error {
	h := s.hub
	q, ok := parseTopicQuery(query)
	rid := q[qRID]
	if !ok || rid == "" {
		h.set.recordUnhandled(h.host, "mqtt-publish", s.key()+": reported patch without $rid")
		return nil
	}
	patch, err := decodeObject(payload)
	if err == nil {
		patch, err = cleanPatch(patch)
	}
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.id == nil {
		return nil
	}
	if err != nil {
		s.logger().Info("reported patch refused", "rid", rid, "err", err)
		s.enqueueLocked(outMsg{topic: topicTwinResPrefix + "400/?" + qRID + "=" + rid,
			payload: formatMQTTError(errArgumentInvalid, err.Error(), now), qos: 0})
		return nil
	}
	old := h.undoTwinLocked(s.id)
	t := s.id.twin
	if err := checkTwinSize("reported properties", t.reported.vals, merged(t.reported.vals, patch), MaxReportedBytes); err != nil {
		s.logger().Info("reported patch refused", "rid", rid, "err", err)
		s.enqueueLocked(outMsg{topic: topicTwinResPrefix + "400/?" + qRID + "=" + rid,
			payload: formatMQTTError(errArgumentInvalid, err.Error(), now), qos: 0})
		return nil
	}
	h.counters.twinPatches.Add(1)
	t.reported.patch(patch, now)
	t.version++
	if err := h.persistLocked(false, s.id); err != nil {
		s.id.twin = old
		s.logger().Error("hubsim: persisting reported properties failed", "rid", rid, "err", err)
		s.enqueueLocked(outMsg{topic: topicTwinResPrefix + "500/?" + qRID + "=" + rid,
			payload: formatMQTTError(errServer, "storing the twin failed", now), qos: 0})
		return nil
	}
	s.enqueueLocked(outMsg{topic: topicTwinResPrefix + "204/?" + qRID + "=" + rid + "&" + qVersion + "=" + strconv.FormatInt(t.reported.version, 10), qos: 0})
	return nil
}

// response handles "$iothub/{methods,streams}/res/<status>/?$rid=<rid>".
func (s *session) response(kind, rest string, payload []byte) error {
	h := s.hub
	statusStr, query, ok := strings.Cut(rest, "/")
	status, err := strconv.Atoi(statusStr)
	q, qok := parseTopicQuery(query)
	if !ok || err != nil || !qok || q[qRID] == "" {
		h.set.recordUnhandled(h.host, "mqtt-publish", s.key()+": malformed "+kind+" response "+rest)
		return nil
	}
	var body []byte
	if kind == "method" {
		body = bytes.TrimSpace(payload)
		if len(body) == 0 {
			body = []byte("null")
		} else if !json.Valid(body) {
			h.set.recordUnhandled(h.host, "mqtt-publish", s.key()+": method response payload is not JSON")
			b, _ := json.Marshal(string(payload))
			body = b
		}
	}
	res := callResult{status: status, payload: body}
	if kind == "method" && len(body) > MaxMethodPayloadBytes {
		res = callResult{err: fmt.Errorf("%w: method response of %d bytes is over Azure's limit of %d", ErrTooLarge, len(body), MaxMethodPayloadBytes)}
	}
	if !h.resolve(s.key()+"|"+q[qRID], kind, res) {
		s.logger().Debug("response for unknown or finished request", "rid", q[qRID], "kind", kind)
	}
	return nil
}

// Disconnected is called once when the client is gone.
func (s *session) Disconnected(err error) {
	s.stop()
	h := s.hub
	now := h.now()
	h.mu.Lock()
	delete(h.sessions, s)
	var fail []*pendingCall
	if s.id != nil {
		if s.id.sess == s {
			s.id.sess = nil
			s.id.connUpdated = now
			h.persistDocLocked(s.id, "disconnect")
		}
		for _, m := range s.id.c2d {
			if m.inflight == s {
				m.inflight = nil
			}
		}
	}
	for k, pc := range h.pending {
		if pc.sess == s {
			delete(h.pending, k)
			fail = append(fail, pc)
		}
	}
	h.notifyLocked()
	h.mu.Unlock()
	for _, pc := range fail {
		pc.ch <- callResult{err: ErrDeviceNotOnline}
	}
	h.counters.disconnects.Add(1)
	s.logger().Info("device disconnected", "err", err)
}

// c2dRetry is how soon the sender retries a C2D delivery the broker refused
// because the device's SUBSCRIBE was not yet in place; c2dRetries bounds it.
const (
	c2dRetry   = 20 * time.Millisecond
	c2dRetries = 100
)

// sendRun is the connection's only writer while it runs: it drains the
// publish queue in order and delivers queued C2D messages, then exits.
// wakeLocked starts it; stop waits for it (s.wg).
func (s *session) sendRun() {
	defer s.wg.Done()
	h := s.hub
	for {
		h.mu.Lock()
		s.woken = false
		if s.gone {
			s.sending = false
			h.mu.Unlock()
			return
		}
		msgs := s.queue
		s.queue = nil
		c2d := s.takeC2DLocked()
		if len(msgs) == 0 && len(c2d) == 0 {
			s.sending = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		for _, m := range msgs {
			if err := s.out.Publish(m.topic, m.payload, m.qos); err != nil {
				s.logger().Debug("publish failed", "topic", m.topic, "err", err)
				if m.onErr != nil {
					m.onErr(err)
				}
			} else {
				h.counters.messagesOut.Add(1)
			}
		}
		notYet := false
		for i, c := range c2d {
			if !s.deliverC2D(c) {
				// deliverC2D put c back in the queue; the rest of the
				// batch, still marked in flight on s, goes back with it so
				// the retry takes all of them again, in order.
				for _, rest := range c2d[i+1:] {
					h.c2dSettled(s, rest, false)
				}
				notYet = true
				break
			}
		}
		if !notYet {
			s.attempts = 0
			continue
		}
		// Not subscribed yet: try again after c2dRetry (at most c2dRetries
		// times in a row), or sooner when something else wakes the sender.
		s.attempts++
		h.mu.Lock()
		if s.attempts <= c2dRetries && !s.gone && s.retryTimer == nil {
			s.retryTimer = time.AfterFunc(c2dRetry, s.retryNow)
		}
		if !s.woken {
			s.sending = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
	}
}
