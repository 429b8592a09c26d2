package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/ident"
	"github.com/porthole-iot/porthole/hubsim/internal/store"
)

// Persistence: with Config.Store set, every change of an identity, its twin
// or its C2D queue is written to the store while Hub.mu is held and before
// the change is acknowledged (REST answer, MQTT response, desired-property
// push). The in-memory maps stay the read cache; newSet loads them back.

// identityRecord is an identity as stored (package store keeps it as JSON).
// Connection state is not stored: after a restart nothing is connected.
type identityRecord struct {
	ManagedBy     string     `json:"managedBy,omitempty"`
	GenerationID  string     `json:"generationId"`
	ETag          string     `json:"etag"`
	Status        Status     `json:"status"`
	StatusReason  string     `json:"statusReason,omitempty"`
	StatusUpdated time.Time  `json:"statusUpdated"`
	Auth          ident.Auth `json:"auth"`
	Edge          bool       `json:"edge,omitempty"`
	ConnUpdated   time.Time  `json:"connUpdated"`
	LastActivity  time.Time  `json:"lastActivity"`
	Twin          twinRecord `json:"twin"`
}

type twinRecord struct {
	Tags     map[string]any `json:"tags"`
	Desired  propRecord     `json:"desired"`
	Reported propRecord     `json:"reported"`
	Version  int64          `json:"version"`
}

type propRecord struct {
	Vals    map[string]any `json:"vals"`
	Meta    *metaRecord    `json:"meta"`
	Version int64          `json:"version"`
}

type metaRecord struct {
	Updated time.Time              `json:"u"`
	Version int64                  `json:"v,omitempty"`
	Kids    map[string]*metaRecord `json:"k,omitempty"`
}

func metaToRecord(n *metaNode) *metaRecord {
	if n == nil {
		return nil
	}
	r := &metaRecord{Updated: n.updated, Version: n.version}
	if len(n.kids) > 0 {
		r.Kids = make(map[string]*metaRecord, len(n.kids))
		for k, kid := range n.kids {
			r.Kids[k] = metaToRecord(kid)
		}
	}
	return r
}

func (r *metaRecord) node() *metaNode {
	if r == nil {
		return &metaNode{}
	}
	n := &metaNode{updated: r.Updated, version: r.Version}
	if len(r.Kids) > 0 {
		n.kids = make(map[string]*metaNode, len(r.Kids))
		for k, kid := range r.Kids {
			n.kids[k] = kid.node()
		}
	}
	return n
}

func (p *propSet) record() propRecord {
	return propRecord{Vals: p.vals, Meta: metaToRecord(p.meta), Version: p.version}
}

func (r propRecord) propSet() propSet {
	vals := r.Vals
	if vals == nil {
		vals = map[string]any{}
	}
	return propSet{vals: vals, meta: r.Meta.node(), version: r.Version}
}

// clone deep-copies a twin, so that a change the store refuses can be undone.
func (t *twin) clone() *twin {
	cp := func(p propSet) propSet {
		return propSet{vals: deepCopyMap(p.vals), meta: metaToRecord(p.meta).node(), version: p.version}
	}
	return &twin{tags: deepCopyMap(t.tags), desired: cp(t.desired), reported: cp(t.reported), version: t.version}
}

func (id *identity) record() identityRecord {
	return identityRecord{
		ManagedBy: id.managedBy, GenerationID: id.generationID, ETag: id.etag,
		Status: id.status, StatusReason: id.statusReason, StatusUpdated: id.statusUpdated,
		Auth: id.auth, Edge: id.edge, ConnUpdated: id.connUpdated, LastActivity: id.lastActivity.load(),
		Twin: twinRecord{Tags: id.twin.tags, Desired: id.twin.desired.record(),
			Reported: id.twin.reported.record(), Version: id.twin.version},
	}
}

// persistCtx bounds a store write. The caller's context is not used: a
// client that goes away mid-write must not leave memory and disk apart.
func persistCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// twinDocLocked renders the twin document of id as GET /twins answers it.
func (h *Hub) twinDocLocked(id *identity) ([]byte, error) {
	b, err := json.Marshal(id.twinLocked(h.devices[id.deviceID]))
	if err != nil {
		return nil, fmt.Errorf("hub: encoding twin of %s: %w", id.key(), err)
	}
	return b, nil
}

// putIdentityLocked writes id's record and twin document; for a device also
// its modules' twin documents, which show the device's status.
func (h *Hub) putIdentityLocked(tx *store.Tx, id *identity) error {
	state, err := json.Marshal(id.record())
	if err != nil {
		return fmt.Errorf("hub: encoding %s: %w", id.key(), err)
	}
	doc, err := h.twinDocLocked(id)
	if err != nil {
		return err
	}
	if err := tx.PutIdentity(h.host, id.deviceID, id.moduleID, state, doc); err != nil {
		return err
	}
	if id.moduleID != "" {
		return nil
	}
	for _, m := range id.modules {
		doc, err := h.twinDocLocked(m)
		if err != nil {
			return err
		}
		if err := tx.PutTwinDoc(h.host, m.deviceID, m.moduleID, doc); err != nil {
			return err
		}
	}
	return nil
}

// persistLocked writes ids (records and twin documents) and, when withSeq,
// the hub's etag counter, in one transaction. Without a store it does nothing.
func (h *Hub) persistLocked(withSeq bool, ids ...*identity) error {
	st := h.set.cfg.Store
	if st == nil {
		return nil
	}
	ctx, cancel := persistCtx()
	defer cancel()
	return st.Update(ctx, func(tx *store.Tx) error {
		for _, id := range ids {
			if err := h.putIdentityLocked(tx, id); err != nil {
				return err
			}
		}
		if withSeq {
			return tx.SetHubSeq(h.host, h.seq)
		}
		return nil
	})
}

// persistWith runs fn in a store transaction (nothing without a store).
func (h *Hub) persistWith(fn func(tx *store.Tx) error) error {
	st := h.set.cfg.Store
	if st == nil {
		return nil
	}
	ctx, cancel := persistCtx()
	defer cancel()
	return st.Update(ctx, fn)
}

// persistDocLocked rewrites id's twin document (and record, which carries
// the connection times); used on connect, disconnect and queue changes,
// where a failure is logged rather than refused.
func (h *Hub) persistDocLocked(id *identity, why string) {
	if err := h.persistLocked(false, id); err != nil {
		h.log.Error("hubsim: persisting twin document failed", "device", id.key(), "why", why, "err", err)
	}
}

// load fills the hub from the store: identities, twins, C2D queues and the
// etag counter. Twin documents are rewritten (every identity is offline now).
func (h *Hub) load(ctx context.Context, st *store.Store) error {
	seq, err := st.HubSeq(ctx, h.host)
	if err != nil {
		return err
	}
	rows, err := st.Identities(ctx, h.host)
	if err != nil {
		return err
	}
	msgs, err := st.C2D(ctx, h.host)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq = seq
	for _, row := range rows {
		dec := json.NewDecoder(bytes.NewReader(row.State))
		dec.UseNumber() // twin values round-trip exactly, as decodeObject keeps them
		var r identityRecord
		if err := dec.Decode(&r); err != nil {
			return fmt.Errorf("hub %s: stored identity %s/%s: %w", h.host, row.DeviceID, row.ModuleID, err)
		}
		tags := r.Twin.Tags
		if tags == nil {
			tags = map[string]any{}
		}
		id := &identity{deviceID: row.DeviceID, moduleID: row.ModuleID, managedBy: r.ManagedBy,
			generationID: r.GenerationID, etag: r.ETag, status: r.Status, statusReason: r.StatusReason,
			statusUpdated: r.StatusUpdated, auth: r.Auth, edge: r.Edge, connUpdated: r.ConnUpdated,
			twin: &twin{tags: tags, desired: r.Twin.Desired.propSet(), reported: r.Twin.Reported.propSet(), version: r.Twin.Version}}
		if !r.LastActivity.IsZero() {
			id.lastActivity.store(r.LastActivity)
		}
		if row.ModuleID == "" {
			id.modules = map[string]*identity{}
			h.devices[row.DeviceID] = id
			continue
		}
		dev, ok := h.devices[row.DeviceID]
		if !ok {
			h.log.Warn("hubsim: stored module without its device, ignored", "device", row.DeviceID, "module", row.ModuleID)
			continue
		}
		dev.modules[row.ModuleID] = id
	}
	for _, m := range msgs {
		dev, ok := h.devices[m.DeviceID]
		if !ok {
			continue
		}
		dev.c2d = append(dev.c2d, &c2dMessage{topic: m.Topic, body: m.Body, rowID: m.ID})
	}
	// Every document is rendered again: stored ones may say "Connected"
	// (nothing is, yet), and one written by an older hubsim may lack what
	// this one shows. (10,000 devices load in about 2 s on a loaded 2-core
	// machine, most of it this rewrite.)
	return st.Update(ctx, func(tx *store.Tx) error {
		for _, dev := range h.devices {
			for _, id := range append([]*identity{dev}, mapValues(dev.modules)...) {
				doc, err := h.twinDocLocked(id)
				if err != nil {
					return err
				}
				if err := tx.PutTwinDoc(h.host, id.deviceID, id.moduleID, doc); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// putTwinDocLocked writes only id's twin document (its C2D count changed).
func (h *Hub) putTwinDocLocked(tx *store.Tx, id *identity) error {
	doc, err := h.twinDocLocked(id)
	if err != nil {
		return err
	}
	return tx.PutTwinDoc(h.host, id.deviceID, id.moduleID, doc)
}

// registryUndo holds the registry fields an update changes, to put them back
// when the store refuses the update.
type registryUndo struct {
	status        Status
	statusReason  string
	statusUpdated time.Time
	auth          ident.Auth
	edge          bool
	etag          string
	managedBy     string
}

func (id *identity) undoRegistry() *registryUndo {
	return &registryUndo{status: id.status, statusReason: id.statusReason, statusUpdated: id.statusUpdated,
		auth: id.auth, edge: id.edge, etag: id.etag, managedBy: id.managedBy}
}

func (u registryUndo) restore(id *identity) {
	id.status, id.statusReason, id.statusUpdated = u.status, u.statusReason, u.statusUpdated
	id.auth, id.edge, id.etag, id.managedBy = u.auth, u.edge, u.etag, u.managedBy
}
