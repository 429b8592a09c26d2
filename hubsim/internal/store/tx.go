package store

import (
	"context"
	"database/sql"
	"fmt"
)

// The write statements; Open prepares them all on the writer connection
// (parsing SQL on every write was a sixth of a twin update's cost, and the
// writer's one connection is busy inside a transaction, so they cannot be
// prepared lazily there).
const (
	qSetHubSeq = `INSERT INTO hub_meta (hub, seq) VALUES (?, ?)
		ON CONFLICT (hub) DO UPDATE SET seq = excluded.seq`
	qPutIdentity = `INSERT INTO identities (hub, device_id, module_id, state) VALUES (?, ?, ?, ?)
		ON CONFLICT (hub, device_id, module_id) DO UPDATE SET state = excluded.state`
	qPutTwinDoc = `INSERT INTO twin_docs (hub, device_id, module_id, doc) VALUES (?, ?, ?, ?)
		ON CONFLICT (hub, device_id, module_id) DO UPDATE SET doc = excluded.doc`
	qDeleteDeviceIdentities = `DELETE FROM identities WHERE hub = ? AND device_id = ?`
	qDeleteDeviceTwins      = `DELETE FROM twin_docs WHERE hub = ? AND device_id = ?`
	qDeleteModuleIdentity   = `DELETE FROM identities WHERE hub = ? AND device_id = ? AND module_id = ?`
	qDeleteModuleTwin       = `DELETE FROM twin_docs WHERE hub = ? AND device_id = ? AND module_id = ?`
	qAddC2D                 = `INSERT INTO c2d (hub, device_id, topic, body) VALUES (?, ?, ?, ?)`
	qDeleteC2D              = `DELETE FROM c2d WHERE id = ?`
	qPurgeC2D               = `DELETE FROM c2d WHERE hub = ? AND device_id = ?`
)

func qPutRecord(table string) string {
	return `INSERT INTO ` + table + ` (id, doc) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc`
}

func qDeleteRecord(table string) string { return `DELETE FROM ` + table + ` WHERE id = ?` }

// writeQueries lists every statement Tx runs.
func writeQueries() []string {
	q := []string{qSetHubSeq, qPutIdentity, qPutTwinDoc, qDeleteDeviceIdentities, qDeleteDeviceTwins,
		qDeleteModuleIdentity, qDeleteModuleTwin, qAddC2D, qDeleteC2D, qPurgeC2D}
	for _, k := range []Kind{Enrollments, Groups, Registrations} {
		table, _ := k.table()
		q = append(q, qPutRecord(table), qDeleteRecord(table))
	}
	return q
}

// Tx is one write transaction, valid only inside the Update call that made it.
type Tx struct {
	ctx context.Context
	tx  *sql.Tx
	s   *Store // its wmu is held for the transaction's life
}

func (t *Tx) exec(what, query string, args ...any) (sql.Result, error) {
	st, ok := t.s.stmts[query]
	if !ok {
		return nil, fmt.Errorf("store: %s: statement not prepared", what)
	}
	r, err := t.tx.StmtContext(t.ctx, st).ExecContext(t.ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return r, nil
}

// SetHubSeq records a hub's etag/generation counter.
func (t *Tx) SetHubSeq(hub string, seq int64) error {
	_, err := t.exec("hub seq", qSetHubSeq, hub, seq)
	return err
}

// PutIdentity creates or replaces a device's (moduleID "") or module's
// record, and its twin document (see the package documentation).
func (t *Tx) PutIdentity(hub, deviceID, moduleID string, state, twinDoc []byte) error {
	if _, err := t.exec("put identity", qPutIdentity, hub, deviceID, moduleID, string(state)); err != nil {
		return err
	}
	return t.PutTwinDoc(hub, deviceID, moduleID, twinDoc)
}

// PutTwinDoc replaces only the twin document of an identity (connection
// state, queue length changes).
func (t *Tx) PutTwinDoc(hub, deviceID, moduleID string, twinDoc []byte) error {
	_, err := t.exec("put twin document", qPutTwinDoc, hub, deviceID, moduleID, string(twinDoc))
	return err
}

// DeleteDevice removes a device with its modules, twins and C2D queue.
func (t *Tx) DeleteDevice(hub, deviceID string) error {
	for _, q := range []string{qDeleteDeviceIdentities, qDeleteDeviceTwins, qPurgeC2D} {
		if _, err := t.exec("delete device", q, hub, deviceID); err != nil {
			return err
		}
	}
	return nil
}

// DeleteModule removes a module and its twin.
func (t *Tx) DeleteModule(hub, deviceID, moduleID string) error {
	for _, q := range []string{qDeleteModuleIdentity, qDeleteModuleTwin} {
		if _, err := t.exec("delete module", q, hub, deviceID, moduleID); err != nil {
			return err
		}
	}
	return nil
}

// AddC2D appends a message to a device's queue and returns its id.
func (t *Tx) AddC2D(hub, deviceID, topic string, body []byte) (int64, error) {
	if body == nil {
		body = []byte{}
	}
	r, err := t.exec("queue c2d", qAddC2D, hub, deviceID, topic, body)
	if err != nil {
		return 0, err
	}
	id, err := r.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("store: queue c2d: %w", err)
	}
	return id, nil
}

// DeleteC2D removes one message (delivered).
func (t *Tx) DeleteC2D(id int64) error {
	_, err := t.exec("delete c2d", qDeleteC2D, id)
	return err
}

// PurgeC2D removes a device's whole queue.
func (t *Tx) PurgeC2D(hub, deviceID string) error {
	_, err := t.exec("purge c2d", qPurgeC2D, hub, deviceID)
	return err
}

// Kind names one of DPS's record collections.
type Kind int

// DPS record collections.
const (
	Enrollments   Kind = iota // individual enrollments, keyed by lower-case registration ID
	Groups                    // enrollment groups, keyed by lower-case group ID
	Registrations             // registration records, keyed by lower-case registration ID
)

// table is the kind's table name; only these constants reach SQL text.
func (k Kind) table() (string, error) {
	switch k {
	case Enrollments:
		return "dps_enrollments", nil
	case Groups:
		return "dps_groups", nil
	case Registrations:
		return "dps_registrations", nil
	}
	return "", fmt.Errorf("store: unknown record kind %d", int(k))
}

// PutRecord creates or replaces a DPS record.
func (t *Tx) PutRecord(k Kind, key string, doc []byte) error {
	table, err := k.table()
	if err != nil {
		return err
	}
	_, err = t.exec("put "+table, qPutRecord(table), key, string(doc))
	return err
}

// DeleteRecord removes a DPS record; a missing one is not an error.
func (t *Tx) DeleteRecord(k Kind, key string) error {
	table, err := k.table()
	if err != nil {
		return err
	}
	_, err = t.exec("delete "+table, qDeleteRecord(table), key)
	return err
}
