package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Identity is a stored device or module record.
type Identity struct {
	DeviceID, ModuleID string
	State              []byte
}

// C2D is a stored cloud-to-device message.
type C2D struct {
	ID       int64
	DeviceID string
	Topic    string
	Body     []byte
}

// Record is a stored DPS record.
type Record struct {
	Key string
	Doc []byte
}

// HubSeq returns a hub's etag/generation counter (0 when none is stored).
func (s *Store) HubSeq(ctx context.Context, hub string) (int64, error) {
	var seq int64
	err := s.rdb.QueryRowContext(ctx, `SELECT seq FROM hub_meta WHERE hub = ?`, hub).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: hub seq: %w", err)
	}
	return seq, nil
}

// Identities returns a hub's devices and modules, each device before its
// modules.
func (s *Store) Identities(ctx context.Context, hub string) ([]Identity, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT device_id, module_id, state FROM identities
		WHERE hub = ? ORDER BY module_id <> '', device_id, module_id`, hub)
	if err != nil {
		return nil, fmt.Errorf("store: identities: %w", err)
	}
	defer rows.Close()
	var out []Identity
	for rows.Next() {
		var id Identity
		var state string
		if err := rows.Scan(&id.DeviceID, &id.ModuleID, &state); err != nil {
			return nil, fmt.Errorf("store: identities: %w", err)
		}
		id.State = []byte(state)
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: identities: %w", err)
	}
	return out, nil
}

// C2D returns a hub's queued cloud-to-device messages in queue order.
func (s *Store) C2D(ctx context.Context, hub string) ([]C2D, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, device_id, topic, body FROM c2d WHERE hub = ? ORDER BY id`, hub)
	if err != nil {
		return nil, fmt.Errorf("store: c2d: %w", err)
	}
	defer rows.Close()
	var out []C2D
	for rows.Next() {
		var m C2D
		if err := rows.Scan(&m.ID, &m.DeviceID, &m.Topic, &m.Body); err != nil {
			return nil, fmt.Errorf("store: c2d: %w", err)
		}
		if m.Body == nil {
			m.Body = []byte{} // an empty message is a message
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: c2d: %w", err)
	}
	return out, nil
}

// Records returns every record of a DPS collection, ordered by key.
func (s *Store) Records(ctx context.Context, k Kind) ([]Record, error) {
	table, err := k.table()
	if err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, doc FROM `+table+` ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", table, err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var r Record
		var doc string
		if err := rows.Scan(&r.Key, &doc); err != nil {
			return nil, fmt.Errorf("store: %s: %w", table, err)
		}
		r.Doc = []byte(doc)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", table, err)
	}
	return out, nil
}
