package hub

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"

	"github.com/porthole-iot/porthole/hubsim/internal/query"
	"github.com/porthole-iot/porthole/hubsim/internal/store"
)

// TwinQuerier runs IoT Hub twin queries (POST /devices/query) for one hub,
// named by its host name. Errors matching query.ErrQuery or
// query.ErrContinuation are the client's (400); others are the server's.
type TwinQuerier interface {
	QueryTwins(ctx context.Context, hub, text string, page query.Page) (query.Result, error)
}

// SQLTwins queries the twin_docs table or view of a database (hub, device_id,
// module_id, doc), as hubsim's persistent store keeps it.
type SQLTwins struct{ DB *sql.DB }

// QueryTwins implements TwinQuerier.
func (s SQLTwins) QueryTwins(ctx context.Context, hub, text string, page query.Page) (query.Result, error) {
	return query.Execute(ctx, s.DB, hub, text, page)
}

// snapshotTwins is the TwinQuerier of a Set without a database: each query
// copies the hub's current twins into a private in-memory SQLite database
// and runs there. Continuation tokens resume by (device id, module id), so
// paging across snapshots neither repeats nor skips twins that stayed.
type snapshotTwins struct{ set *Set }

func (s snapshotTwins) QueryTwins(ctx context.Context, host, text string, page query.Page) (query.Result, error) {
	q, err := query.Parse(text)
	if err != nil {
		return query.Result{}, err
	}
	h, err := s.set.hubOrErr(host)
	if err != nil {
		return query.Result{}, err
	}
	type row struct {
		dev, mod string
		twin     Twin
	}
	var rows []row
	h.mu.Lock()
	for _, d := range h.sortedDevicesLocked() {
		if q.From == query.Devices {
			rows = append(rows, row{d.deviceID, "", d.twinLocked(d)})
			continue
		}
		mids := make([]string, 0, len(d.modules))
		for k := range d.modules {
			mids = append(mids, k)
		}
		slices.Sort(mids)
		for _, k := range mids {
			rows = append(rows, row{d.deviceID, k, d.modules[k].twinLocked(d)})
		}
	}
	h.mu.Unlock()

	if !store.Available {
		return query.Result{}, fmt.Errorf("hub: twin queries need SQLite, which this build of hubsim (GOARCH %s) does not have", runtime.GOARCH)
	}
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		return query.Result{}, fmt.Errorf("hub: query snapshot: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // one connection: ":memory:" is per connection
	if _, err := db.ExecContext(ctx, `CREATE TABLE `+query.Table+` (hub TEXT NOT NULL, device_id TEXT NOT NULL,
		module_id TEXT NOT NULL DEFAULT '', doc TEXT NOT NULL, PRIMARY KEY (hub, device_id, module_id))`); err != nil {
		return query.Result{}, fmt.Errorf("hub: query snapshot: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return query.Result{}, fmt.Errorf("hub: query snapshot: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO `+query.Table+` (hub, device_id, module_id, doc) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return query.Result{}, fmt.Errorf("hub: query snapshot: %w", err)
	}
	for _, r := range rows {
		doc, err := json.Marshal(r.twin)
		if err != nil {
			return query.Result{}, fmt.Errorf("hub: query snapshot: %w", err)
		}
		if _, err := ins.ExecContext(ctx, host, r.dev, r.mod, string(doc)); err != nil {
			return query.Result{}, fmt.Errorf("hub: query snapshot: %w", err)
		}
	}
	if err := ins.Close(); err != nil {
		return query.Result{}, fmt.Errorf("hub: query snapshot: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return query.Result{}, fmt.Errorf("hub: query snapshot: %w", err)
	}
	return query.Run(ctx, db, host, q, page)
}

// QueryTwins runs an IoT Hub query over a hub's twins, as
// POST /devices/query does (the dashboard's device search).
func (s *Set) QueryTwins(ctx context.Context, host, text string, page query.Page) (query.Result, error) {
	if _, err := s.hubOrErr(host); err != nil {
		return query.Result{}, err
	}
	return s.cfg.Twins.QueryTwins(ctx, host, text, page)
}
