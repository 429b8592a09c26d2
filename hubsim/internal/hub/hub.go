package hub

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/ident"
	"github.com/porthole-iot/porthole/hubsim/internal/sas"
	"github.com/porthole-iot/porthole/hubsim/internal/store"
)

// Hub is one simulated IoT hub: identity registry, twins, connections,
// C2D queues, pending method and stream calls.
type Hub struct {
	set      *Set
	host     string
	name     string // resource name: HubConfig.Name or the first label of host
	policies []sas.Policy
	caPool   *x509.CertPool
	hasCA    bool
	log      *slog.Logger

	mu      sync.Mutex
	closed  bool                    // guarded by mu
	devices map[string]*identity    // guarded by mu; key deviceID (case-sensitive)
	pending map[string]*pendingCall // guarded by mu; key session key + "|" + rid
	// sessions holds every live connection, including ones already replaced
	// by a newer connection of the same identity, so close can stop them all.
	sessions map[*session]struct{} // guarded by mu
	taps     taps                  // event tap subscribers; its own lock, never taken with mu held
	ridSeq   uint64                // guarded by mu
	seq      int64                 // guarded by mu; etag / generation counter
	// changed is closed and replaced whenever a connection or subscription
	// changes, waking callers that wait for a device to come online.
	changed chan struct{} // guarded by mu
	// connTokens and connLast are the device-connections throttle's bucket.
	connTokens float64   // guarded by mu
	connLast   time.Time // guarded by mu

	counters counters // atomics; no lock
}

// identity is a device or module identity with its twin and runtime state.
// Every field but lastActivity is guarded by Hub.mu.
type identity struct {
	deviceID, moduleID string
	managedBy          string
	generationID       string
	etag               string
	status             Status
	statusReason       string
	statusUpdated      time.Time
	auth               ident.Auth
	edge               bool
	connUpdated        time.Time
	// Flapping detection (see noteTakeoverLocked).
	flapLast   time.Time
	flapCount  int
	flapWarned bool
	// lastActivity is stored without Hub.mu: telemetry updates it on every
	// message and must not serialize devices on the hub lock.
	lastActivity activityTime
	twin         *twin
	c2d          []*c2dMessage // devices only: queued and in-flight messages
	sess         *session      // the current connection, nil when offline
	modules      map[string]*identity
}

// activityTime is a time.Time read and written atomically (the zero value
// reads as the zero time).
type activityTime struct{ p atomic.Pointer[time.Time] }

func (a *activityTime) store(t time.Time) { a.p.Store(&t) }

func (a *activityTime) load() time.Time {
	if t := a.p.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

func (id *identity) key() string {
	if id.moduleID == "" {
		return id.deviceID
	}
	return id.deviceID + "/" + id.moduleID
}

func newHub(s *Set, host, name string, pol []sas.Policy, pool *x509.CertPool, hasCA bool) *Hub {
	if name == "" {
		name, _, _ = strings.Cut(host, ".")
	}
	return &Hub{set: s, host: host, name: name, policies: pol, caPool: pool, hasCA: hasCA,
		log: s.log.With("hub", host), devices: map[string]*identity{},
		pending: map[string]*pendingCall{}, changed: make(chan struct{})}
}

// HostName returns the hub's host name as configured.
func (h *Hub) HostName() string { return h.host }

// Policies returns the hub's shared access policies (with their keys).
func (h *Hub) Policies() []sas.Policy { return append([]sas.Policy(nil), h.policies...) }

// Policy returns the named shared access policy.
func (h *Hub) Policy(name string) (sas.Policy, bool) {
	for _, p := range h.policies {
		if p.Name == name {
			return p, true
		}
	}
	return sas.Policy{}, false
}

func (h *Hub) now() time.Time { return h.set.now() }

// notifyLocked wakes everyone waiting on a connection change. Caller holds mu.
func (h *Hub) notifyLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// nextETagLocked returns a fresh identity etag. Caller holds mu.
func (h *Hub) nextETagLocked() string {
	h.seq++
	return base64.StdEncoding.EncodeToString([]byte(strconv.FormatInt(h.seq, 10)))
}

func (h *Hub) newGenerationLocked() string {
	h.seq++
	return fmt.Sprintf("63%016d", h.seq)
}

// validID checks a device or module id: at most 128 characters of ASCII
// letters, digits and - . % _ * ? ! ( ) , : = @ $ '
// [doc: Understand the identity registry in your IoT hub (iot-hub-devguide-identity-registry.md), "Device identity properties"].
//
// Sources disagree on '+', '#' and ';'. Older registry pages and the Event
// Grid device-event schemas list "- : . + % _ # * ? ! ( ) , = @ ; $ '"; the
// current registry page (ms.date 2025-03-28) lists the set above and says
// "The special characters + # aren't supported", and omits ';'. hubsim
// follows the current registry page, so an id that hubsim accepts is one
// Azure documents as supported. The reason is MQTT: a device's topics embed
// its id ("devices/<id>/messages/events/", "devices/<id>/messages/devicebound/#"),
// and MQTT 3.1.1 forbids '+' and '#' in a PUBLISH topic name (§4.7.1, §3.3.2)
// and lets them appear in a filter only as whole-level wildcards, so a device
// whose id holds either could connect but neither send telemetry nor
// subscribe to its own cloud-to-device messages; hubsim's broker refuses
// such topics exactly as the specification requires.
// '%' is allowed and needs no escaping anywhere except the service REST path
// (%25); see sas.Token.Covers for the raw sr the C client sends.
func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if !strings.ContainsRune("-.%_*?!(),:=@$'", rune(c)) {
			return false
		}
	}
	return true
}

// normalizeAuth validates an Authentication from a create/update and fills
// generated keys, as the hub does when symmetric keys are absent or empty.
func (h *Hub) normalizeAuth(a *Authentication) (ident.Auth, error) {
	if a == nil {
		a = &Authentication{Type: AuthSAS}
	}
	var out ident.Auth
	typ := a.Type
	if typ == "" {
		if a.X509Thumbprint != nil && (a.X509Thumbprint.PrimaryThumbprint != "" || a.X509Thumbprint.SecondaryThumbprint != "") {
			typ = AuthSelfSigned
		} else {
			typ = AuthSAS
		}
	}
	out.Type = typ
	switch typ {
	case AuthSAS:
		var pk, sk string
		if a.SymmetricKey != nil {
			pk, sk = a.SymmetricKey.PrimaryKey, a.SymmetricKey.SecondaryKey
		}
		var err error
		if pk == "" {
			if pk, err = newKey(h.set.rand); err != nil {
				return out, err
			}
		}
		if sk == "" {
			if sk, err = newKey(h.set.rand); err != nil {
				return out, err
			}
		}
		for _, k := range []string{pk, sk} {
			b, err := base64.StdEncoding.DecodeString(k)
			// The hub accepts keys of 16 to 64 bytes.
			if err != nil || len(b) < 16 || len(b) > 64 {
				return out, fmt.Errorf("%w: symmetric keys must be base64 of 16 to 64 bytes", ErrInvalid)
			}
		}
		out.PrimaryKey, out.SecondaryKey = pk, sk
	case AuthSelfSigned:
		if a.X509Thumbprint == nil || a.X509Thumbprint.PrimaryThumbprint == "" {
			return out, fmt.Errorf("%w: selfSigned authentication needs a primary thumbprint", ErrInvalid)
		}
		for _, t := range []string{a.X509Thumbprint.PrimaryThumbprint, a.X509Thumbprint.SecondaryThumbprint} {
			if t == "" {
				continue
			}
			if b, err := hex.DecodeString(t); err != nil || (len(b) != 20 && len(b) != 32) {
				return out, fmt.Errorf("%w: thumbprint %q is not hex SHA-1 or SHA-256", ErrInvalid, t)
			}
		}
		out.PrimaryThumbprint = strings.ToUpper(a.X509Thumbprint.PrimaryThumbprint)
		out.SecondaryThumbprint = strings.ToUpper(a.X509Thumbprint.SecondaryThumbprint)
	case AuthCertificateAuthority, AuthNone:
	default:
		return out, fmt.Errorf("%w: unknown authentication type %q", ErrInvalid, a.Type)
	}
	return out, nil
}

func authJSON(a ident.Auth) *Authentication {
	out := &Authentication{Type: a.Type, SymmetricKey: &SymmetricKey{}, X509Thumbprint: &X509Thumbprint{}}
	if a.Type == AuthSAS {
		out.SymmetricKey = &SymmetricKey{PrimaryKey: a.PrimaryKey, SecondaryKey: a.SecondaryKey}
	}
	if a.Type == AuthSelfSigned {
		out.X509Thumbprint = &X509Thumbprint{PrimaryThumbprint: a.PrimaryThumbprint, SecondaryThumbprint: a.SecondaryThumbprint}
	}
	return out
}

func (id *identity) connState() string {
	if id.sess != nil {
		return stateConnected
	}
	return stateDisconnected
}

func (id *identity) deviceLocked() Device {
	return Device{
		DeviceID: id.deviceID, GenerationID: id.generationID, ETag: id.etag,
		ConnectionState: id.connState(), Status: id.status, StatusReason: id.statusReason,
		ConnectionStateUpdatedTime: id.connUpdated, StatusUpdatedTime: id.statusUpdated,
		LastActivityTime: id.lastActivity.load(), CloudToDeviceMessageCount: len(id.c2d),
		Authentication: authJSON(id.auth), Capabilities: &Capabilities{IoTEdge: id.edge},
	}
}

func (id *identity) moduleLocked() Module {
	return Module{
		ModuleID: id.moduleID, ManagedBy: id.managedBy, DeviceID: id.deviceID,
		GenerationID: id.generationID, ETag: id.etag, ConnectionState: id.connState(),
		ConnectionStateUpdatedTime: id.connUpdated, LastActivityTime: id.lastActivity.load(),
		Authentication: authJSON(id.auth),
	}
}

// twinLocked renders the service view of an identity's twin.
func (id *identity) twinLocked(parent *identity) Twin {
	t := Twin{
		DeviceID: id.deviceID, ModuleID: id.moduleID, ETag: id.twin.etag(), DeviceETag: id.etag,
		Status: id.status, StatusReason: id.statusReason, StatusUpdateTime: id.statusUpdated,
		ConnectionState: id.connState(), LastActivityTime: id.lastActivity.load(),
		CloudToDeviceMessageCount: len(id.c2d), AuthenticationType: id.auth.Type,
		X509Thumbprint: X509Thumbprint{PrimaryThumbprint: id.auth.PrimaryThumbprint, SecondaryThumbprint: id.auth.SecondaryThumbprint},
		Version:        id.twin.version, Tags: deepCopyMap(id.twin.tags),
		Properties: TwinProperties{
			Desired:  id.twin.desired.serviceView(true),
			Reported: id.twin.reported.serviceView(false),
		},
	}
	if id.moduleID == "" {
		t.Capabilities = &Capabilities{IoTEdge: id.edge}
	} else if parent != nil {
		t.Status, t.StatusUpdateTime = parent.status, parent.statusUpdated
	}
	return t
}

// etagMatches implements If-Match: empty or "*" (quoted or not) matches any.
func etagMatches(ifMatch, etag string) bool {
	m := strings.TrimSpace(ifMatch)
	if m == "" || m == "*" || m == `"*"` {
		return true
	}
	return strings.Trim(m, `"`) == etag
}

// deviceStatus is a registry status as given (empty means enabled), or
// ErrInvalid naming it (at most maxEcho bytes of it).
func deviceStatus(s Status) (Status, error) {
	switch s {
	case "":
		return StatusEnabled, nil
	case StatusEnabled, StatusDisabled:
		return s, nil
	}
	return "", fmt.Errorf("%w: invalid status %s", ErrInvalid, echo(string(s)))
}

// CreateDevice adds a device. Keys are generated when absent.
func (h *Hub) CreateDevice(ctx context.Context, d Device) (Device, error) {
	if !validID(d.DeviceID) {
		return Device{}, fmt.Errorf("%w: invalid device id %s", ErrInvalid, echo(d.DeviceID))
	}
	auth, err := h.normalizeAuth(d.Authentication)
	if err != nil {
		return Device{}, err
	}
	status, err := deviceStatus(d.Status)
	if err != nil {
		return Device{}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.devices[d.DeviceID]; ok {
		return Device{}, fmt.Errorf("%w: %s", ErrDeviceAlreadyExists, d.DeviceID)
	}
	now := h.now()
	id := &identity{deviceID: d.DeviceID, generationID: h.newGenerationLocked(), etag: h.nextETagLocked(),
		status: status, statusReason: d.StatusReason, statusUpdated: now, auth: auth,
		twin: newTwin(now), modules: map[string]*identity{}}
	if d.Capabilities != nil {
		id.edge = d.Capabilities.IoTEdge
	}
	h.devices[d.DeviceID] = id
	if err := h.persistLocked(true, id); err != nil {
		delete(h.devices, d.DeviceID)
		return Device{}, err
	}
	return id.deviceLocked(), nil
}

// GetDevice returns a device.
func (h *Hub) GetDevice(ctx context.Context, deviceID string) (Device, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id, ok := h.devices[deviceID]
	if !ok {
		return Device{}, fmt.Errorf("%w: %s", ErrDeviceNotFound, deviceID)
	}
	return id.deviceLocked(), nil
}

// ListDevices returns every device ordered by id.
func (h *Hub) ListDevices(ctx context.Context) []Device {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Device, 0, len(h.devices))
	for _, id := range h.sortedDevicesLocked() {
		out = append(out, id.deviceLocked())
	}
	return out
}

func (h *Hub) sortedDevicesLocked() []*identity {
	ids := make([]*identity, 0, len(h.devices))
	for _, id := range h.devices {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].deviceID < ids[j].deviceID })
	return ids
}

// UpdateDevice replaces a device's status, status reason, authentication and
// capabilities. ifMatch is an etag, "*" or empty (unconditional). Disabling a
// connected device disconnects it.
func (h *Hub) UpdateDevice(ctx context.Context, d Device, ifMatch string) (Device, error) {
	auth, err := h.normalizeAuth(d.Authentication)
	if err != nil {
		return Device{}, err
	}
	status, err := deviceStatus(d.Status)
	if err != nil {
		return Device{}, err
	}
	h.mu.Lock()
	id, ok := h.devices[d.DeviceID]
	if !ok {
		h.mu.Unlock()
		return Device{}, fmt.Errorf("%w: %s", ErrDeviceNotFound, d.DeviceID)
	}
	if !etagMatches(ifMatch, id.etag) {
		h.mu.Unlock()
		return Device{}, fmt.Errorf("%w: device %s", ErrPreconditionFailed, d.DeviceID)
	}
	undo := *id.undoRegistry()
	if id.status != status {
		id.statusUpdated = h.now()
	}
	id.status, id.statusReason, id.auth = status, d.StatusReason, auth
	if d.Capabilities != nil {
		id.edge = d.Capabilities.IoTEdge
	}
	id.etag = h.nextETagLocked()
	if err := h.persistLocked(true, id); err != nil {
		undo.restore(id)
		h.mu.Unlock()
		return Device{}, err
	}
	out := id.deviceLocked()
	var drop []*session
	if status == StatusDisabled {
		drop = id.allSessionsLocked()
	}
	h.mu.Unlock()
	for _, s := range drop {
		s.kick("device disabled")
	}
	return out, nil
}

// SetStatus enables or disables a device; disabling disconnects it.
func (h *Hub) SetStatus(ctx context.Context, deviceID string, status Status) error {
	d, err := h.GetDevice(ctx, deviceID)
	if err != nil {
		return err
	}
	d.Status = status
	_, err = h.UpdateDevice(ctx, d, "*")
	return err
}

func (id *identity) allSessionsLocked() []*session {
	var out []*session
	if id.sess != nil {
		out = append(out, id.sess)
	}
	for _, m := range id.modules {
		if m.sess != nil {
			out = append(out, m.sess)
		}
	}
	return out
}

// DeleteDevice removes a device with its modules and queue, disconnecting it.
func (h *Hub) DeleteDevice(ctx context.Context, deviceID, ifMatch string) error {
	h.mu.Lock()
	id, ok := h.devices[deviceID]
	if !ok {
		h.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrDeviceNotFound, deviceID)
	}
	if !etagMatches(ifMatch, id.etag) {
		h.mu.Unlock()
		return fmt.Errorf("%w: device %s", ErrPreconditionFailed, deviceID)
	}
	if err := h.persistWith(func(tx *store.Tx) error { return tx.DeleteDevice(h.host, deviceID) }); err != nil {
		h.mu.Unlock()
		return err
	}
	delete(h.devices, deviceID)
	drop := id.allSessionsLocked()
	h.mu.Unlock()
	for _, s := range drop {
		s.kick("device deleted")
	}
	return nil
}

// CreateModule adds a module to a device.
func (h *Hub) CreateModule(ctx context.Context, m Module) (Module, error) {
	if !validID(m.ModuleID) {
		return Module{}, fmt.Errorf("%w: invalid module id %s", ErrInvalid, echo(m.ModuleID))
	}
	auth, err := h.normalizeAuth(m.Authentication)
	if err != nil {
		return Module{}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	dev, ok := h.devices[m.DeviceID]
	if !ok {
		return Module{}, fmt.Errorf("%w: %s", ErrDeviceNotFound, m.DeviceID)
	}
	if _, ok := dev.modules[m.ModuleID]; ok {
		return Module{}, fmt.Errorf("%w: %s/%s", ErrModuleAlreadyExists, m.DeviceID, m.ModuleID)
	}
	now := h.now()
	id := &identity{deviceID: m.DeviceID, moduleID: m.ModuleID, managedBy: m.ManagedBy,
		generationID: h.newGenerationLocked(), etag: h.nextETagLocked(), status: StatusEnabled,
		statusUpdated: now, auth: auth, twin: newTwin(now)}
	dev.modules[m.ModuleID] = id
	if err := h.persistLocked(true, id); err != nil {
		delete(dev.modules, m.ModuleID)
		return Module{}, err
	}
	return id.moduleLocked(), nil
}

// GetModule returns a module.
func (h *Hub) GetModule(ctx context.Context, deviceID, moduleID string) (Module, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id, err := h.identityLocked(deviceID, moduleID)
	if err != nil {
		return Module{}, err
	}
	return id.moduleLocked(), nil
}

// ListModules returns a device's modules ordered by id.
func (h *Hub) ListModules(ctx context.Context, deviceID string) ([]Module, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	dev, ok := h.devices[deviceID]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrDeviceNotFound, deviceID)
	}
	out := make([]Module, 0, len(dev.modules))
	for _, m := range dev.modules {
		out = append(out, m.moduleLocked())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ModuleID < out[j].ModuleID })
	return out, nil
}

// UpdateModule replaces a module's authentication and managedBy.
func (h *Hub) UpdateModule(ctx context.Context, m Module, ifMatch string) (Module, error) {
	auth, err := h.normalizeAuth(m.Authentication)
	if err != nil {
		return Module{}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	id, err := h.identityLocked(m.DeviceID, m.ModuleID)
	if err != nil {
		return Module{}, err
	}
	if !etagMatches(ifMatch, id.etag) {
		return Module{}, fmt.Errorf("%w: module %s/%s", ErrPreconditionFailed, m.DeviceID, m.ModuleID)
	}
	undo := *id.undoRegistry()
	id.auth, id.managedBy, id.etag = auth, m.ManagedBy, h.nextETagLocked()
	if err := h.persistLocked(true, id); err != nil {
		undo.restore(id)
		return Module{}, err
	}
	return id.moduleLocked(), nil
}

// DeleteModule removes a module, disconnecting it.
func (h *Hub) DeleteModule(ctx context.Context, deviceID, moduleID, ifMatch string) error {
	h.mu.Lock()
	id, err := h.identityLocked(deviceID, moduleID)
	if err != nil {
		h.mu.Unlock()
		return err
	}
	if !etagMatches(ifMatch, id.etag) {
		h.mu.Unlock()
		return fmt.Errorf("%w: module %s/%s", ErrPreconditionFailed, deviceID, moduleID)
	}
	if err := h.persistWith(func(tx *store.Tx) error { return tx.DeleteModule(h.host, deviceID, moduleID) }); err != nil {
		h.mu.Unlock()
		return err
	}
	delete(h.devices[deviceID].modules, moduleID)
	s := id.sess
	h.mu.Unlock()
	if s != nil {
		s.kick("module deleted")
	}
	return nil
}

// identityLocked finds a device (moduleID empty) or module. Caller holds mu.
func (h *Hub) identityLocked(deviceID, moduleID string) (*identity, error) {
	dev, ok := h.devices[deviceID]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrDeviceNotFound, deviceID)
	}
	if moduleID == "" {
		return dev, nil
	}
	m, ok := dev.modules[moduleID]
	if !ok {
		return nil, fmt.Errorf("%w: %s/%s", ErrModuleNotFound, deviceID, moduleID)
	}
	return m, nil
}

// GetTwin returns the twin of a device (moduleID empty) or module.
func (h *Hub) GetTwin(ctx context.Context, deviceID, moduleID string) (Twin, error) {
	h.counters.twinGets.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	id, err := h.identityLocked(deviceID, moduleID)
	if err != nil {
		return Twin{}, err
	}
	return id.twinLocked(h.devices[deviceID]), nil
}

// UpdateTwin merges tags and desired properties (JSON merge patch: null
// deletes). Connected devices subscribed to desired updates get the patch.
func (h *Hub) UpdateTwin(ctx context.Context, deviceID, moduleID string, p TwinPatch, ifMatch string) (Twin, error) {
	return h.changeTwin(deviceID, moduleID, p, ifMatch, false)
}

// ReplaceTwin replaces tags and desired properties.
func (h *Hub) ReplaceTwin(ctx context.Context, deviceID, moduleID string, p TwinPatch, ifMatch string) (Twin, error) {
	return h.changeTwin(deviceID, moduleID, p, ifMatch, true)
}

func (h *Hub) changeTwin(deviceID, moduleID string, p TwinPatch, ifMatch string, replace bool) (Twin, error) {
	h.counters.twinPatches.Add(1)
	tags, err := cleanPatch(p.Tags)
	if err != nil {
		return Twin{}, err
	}
	desired, err := cleanPatch(p.Desired)
	if err != nil {
		return Twin{}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	id, err := h.identityLocked(deviceID, moduleID)
	if err != nil {
		return Twin{}, err
	}
	if !etagMatches(ifMatch, id.twin.etag()) {
		return Twin{}, fmt.Errorf("%w: twin %s", ErrPreconditionFailed, id.key())
	}
	if p.Tags != nil {
		after := tags
		if !replace {
			after = merged(id.twin.tags, tags)
		}
		if err := checkTwinSize("tags", id.twin.tags, after, MaxTagsBytes); err != nil {
			return Twin{}, err
		}
	}
	if p.Desired != nil {
		after := desired
		if !replace {
			after = merged(id.twin.desired.vals, desired)
		}
		if err := checkTwinSize("desired properties", id.twin.desired.vals, after, MaxDesiredBytes); err != nil {
			return Twin{}, err
		}
	}
	now := h.now()
	changed := false
	old := h.undoTwinLocked(id)
	var push map[string]any
	if p.Tags != nil {
		if replace {
			id.twin.tags = deepCopyMap(tags)
		} else {
			mergeTags(id.twin.tags, tags)
		}
		changed = true
	}
	if p.Desired != nil {
		var patch map[string]any
		if replace {
			patch = id.twin.desired.replace(desired, now)
		} else {
			id.twin.desired.patch(desired, now)
			patch = deepCopyMap(desired)
		}
		changed = true
		push = patch
	}
	if changed {
		id.twin.version++
		if err := h.persistLocked(false, id); err != nil {
			id.twin = old
			return Twin{}, err
		}
	}
	if push != nil {
		h.pushDesiredLocked(id, push)
	}
	return id.twinLocked(h.devices[deviceID]), nil
}

func mergeTags(dst, patch map[string]any) {
	for k, v := range patch {
		if v == nil {
			delete(dst, k)
			continue
		}
		if sub, ok := v.(map[string]any); ok {
			cur, isMap := dst[k].(map[string]any)
			if !isMap {
				cur = map[string]any{}
				dst[k] = cur
			}
			mergeTags(cur, sub)
			continue
		}
		dst[k] = deepCopy(v)
	}
}

// pushDesiredLocked queues a desired-properties patch (with its "$version")
// to the identity's connection, if it subscribed to desired updates.
// Caller holds mu; queuing under mu keeps pushes in version order.
func (h *Hub) pushDesiredLocked(id *identity, patch map[string]any) {
	s := id.sess
	if s == nil || !s.subscribedLocked(topicTwinPatchDesired+"#") {
		return
	}
	patch["$version"] = id.twin.desired.version
	body, _ := json.Marshal(patch)
	s.enqueueLocked(outMsg{topic: topicTwinPatchDesired + "?" + qVersion + "=" + strconv.FormatInt(id.twin.desired.version, 10), payload: body, qos: 1})
}

// ---- ident.Hubs ----

func (s *Set) hubOrErr(host string) (*Hub, error) {
	h, ok := s.Hub(host)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrHubNotFound, host)
	}
	return h, nil
}

// UpsertDevice creates the device on hub (enabled) or updates its auth (ident.Hubs).
func (s *Set) UpsertDevice(hub string, d ident.Device) error {
	h, err := s.hubOrErr(hub)
	if err != nil {
		return err
	}
	a := &Authentication{Type: d.Auth.Type, SymmetricKey: &SymmetricKey{PrimaryKey: d.Auth.PrimaryKey, SecondaryKey: d.Auth.SecondaryKey},
		X509Thumbprint: &X509Thumbprint{PrimaryThumbprint: d.Auth.PrimaryThumbprint, SecondaryThumbprint: d.Auth.SecondaryThumbprint}}
	dev := Device{DeviceID: d.DeviceID, Status: StatusEnabled, Authentication: a, Capabilities: &Capabilities{IoTEdge: d.EdgeEnabled}}
	ctx := context.Background()
	if _, err := h.CreateDevice(ctx, dev); err == nil || !errors.Is(err, ErrDeviceAlreadyExists) {
		return err
	}
	_, err = h.UpdateDevice(ctx, dev, "*")
	return err
}

// RemoveDevice deletes the device; a missing device is not an error (ident.Hubs).
func (s *Set) RemoveDevice(hub, deviceID string) error {
	h, err := s.hubOrErr(hub)
	if err != nil {
		return err
	}
	if err := h.DeleteDevice(context.Background(), deviceID, "*"); err != nil && !errors.Is(err, ErrDeviceNotFound) {
		return err
	}
	return nil
}

// ExportTwin returns the device's tags, desired and reported properties (ident.Hubs).
func (s *Set) ExportTwin(hub, deviceID string) (ident.Twin, bool) {
	h, ok := s.Hub(hub)
	if !ok {
		return ident.Twin{}, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	id, ok := h.devices[deviceID]
	if !ok {
		return ident.Twin{}, false
	}
	return ident.Twin{Tags: deepCopyMap(id.twin.tags), Desired: deepCopyMap(id.twin.desired.vals),
		Reported: deepCopyMap(id.twin.reported.vals)}, true
}

// ImportTwin replaces the device's tags, desired and reported properties;
// versions advance and a connected device gets the desired patch (ident.Hubs).
func (s *Set) ImportTwin(hub, deviceID string, t ident.Twin) error {
	h, err := s.hubOrErr(hub)
	if err != nil {
		return err
	}
	tags, err := cleanPatch(t.Tags)
	if err != nil {
		return err
	}
	desired, err := cleanPatch(t.Desired)
	if err != nil {
		return err
	}
	reported, err := cleanPatch(t.Reported)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	id, ok := h.devices[deviceID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrDeviceNotFound, deviceID)
	}
	now := h.now()
	old := h.undoTwinLocked(id)
	id.twin.tags = deepCopyMap(tags)
	patch := id.twin.desired.replace(desired, now)
	id.twin.reported.replace(reported, now)
	id.twin.version++
	if err := h.persistLocked(false, id); err != nil {
		id.twin = old
		return err
	}
	h.pushDesiredLocked(id, patch)
	return nil
}
