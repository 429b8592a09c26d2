package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// FileName is the database's name in hubsim's state directory.
const FileName = "hubsim.db"

// ErrFutureSchema is returned by Open for a database written by a newer
// hubsim (its schema version is above SchemaVersion).
var ErrFutureSchema = errors.New("database schema is newer than this hubsim")

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("store: closed")

// Options tune Open.
type Options struct {
	// Durable selects synchronous=FULL: every commit is fsynced, so
	// acknowledged writes survive power loss too, at the cost of an fsync per
	// write. The default (NORMAL) survives the process being killed.
	Durable bool
}

// Store is an open state database. Its methods are safe for concurrent use.
type Store struct {
	path   string     // "" for a memory database
	rdb    *sql.DB    // readers (DB); the writer too for a memory database
	wdb    *sql.DB    // the one writer connection
	wmu    sync.Mutex // serialises Update; guards closed
	closed bool       // guarded by wmu
	// stmts are the write statements (writeQueries), prepared by Open;
	// read-only afterwards.
	stmts map[string]*sql.Stmt

	// cdb is the checkpointer's connection (file databases only): the
	// writer does not checkpoint (wal_autocheckpoint 0), so a commit never
	// waits for a checkpoint's fsyncs; checkpointLoop folds the WAL into the
	// database in the background instead.
	cdb      *sql.DB
	stopCkpt chan struct{} // closed by Close
	ckptDone chan struct{} // closed when checkpointLoop returns
}

// CheckpointInterval is how often a file database's WAL is checkpointed
// (PASSIVE: never blocking the writer or readers).
const CheckpointInterval = time.Second

var memSeq atomic.Uint64

// Open opens (creating if needed) the database file at path, with mode 0600,
// and brings its schema up to date. A database of a newer schema version is
// refused with an error wrapping ErrFutureSchema.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("store: empty database path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// Create the file ourselves so that it is 0600 from the start; SQLite
	// creates the -wal and -shm files with the main file's permissions.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	syncMode := "NORMAL"
	if opts.Durable {
		syncMode = "FULL"
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+syncMode+")")
	q.Add("_pragma", "foreign_keys(1)")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	wdb, err := sql.Open("sqlite", dsn+"&_txlock=immediate&_pragma=wal_autocheckpoint(0)")
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	// Readers cannot write by mistake: DB is for queries.
	rdb, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)")
	if err != nil {
		_ = wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	rdb.SetMaxOpenConns(4)
	cdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("store: open %s: %w", path, err), wdb.Close(), rdb.Close())
	}
	cdb.SetMaxOpenConns(1)
	s := &Store{path: path, rdb: rdb, wdb: wdb, cdb: cdb}
	err = s.migrate(ctx)
	if err == nil {
		err = s.prepare(ctx)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("store: %s: %w", path, err), s.Close())
	}
	s.stopCkpt, s.ckptDone = make(chan struct{}), make(chan struct{})
	go s.checkpointLoop() // owned by s: Close stops it and waits
	return s, nil
}

// OpenMemory opens a fresh in-memory database with the current schema. It
// has one connection, shared by readers and the writer.
func OpenMemory(ctx context.Context) (*Store, error) {
	name := fmt.Sprintf("file:hubsim-mem-%d?mode=memory&_pragma=foreign_keys(1)", memSeq.Add(1))
	db, err := sql.Open("sqlite", name)
	if err != nil {
		return nil, fmt.Errorf("store: open memory database: %w", err)
	}
	// Each connection to a private memory database is a database of its
	// own: keep exactly one, forever.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	s := &Store{rdb: db, wdb: db}
	err = s.migrate(ctx)
	if err == nil {
		err = s.prepare(ctx)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("store: memory database: %w", err), s.Close())
	}
	return s, nil
}

// migrate applies the missing migrations, each in its own transaction with
// its version bump.
func (s *Store) migrate(ctx context.Context) error {
	var v int
	if err := s.wdb.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if v > SchemaVersion {
		return fmt.Errorf("%w: the database has schema version %d, this hubsim knows up to %d; use a newer hubsim or another state_dir", ErrFutureSchema, v, SchemaVersion)
	}
	for ; v < SchemaVersion; v++ {
		tx, err := s.wdb.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		// PRAGMA takes no bound parameters; v+1 is an int we computed.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
	}
	return nil
}

// Path is the database file, "" for a memory database.
func (s *Store) Path() string { return s.path }

// DB is the database for reads (the query language). Do not write through
// it: writes go through Update so that they are serialised and ordered.
func (s *Store) DB() *sql.DB { return s.rdb }

// Version returns the database's schema version.
func (s *Store) Version(ctx context.Context) (int, error) {
	var v int
	err := s.rdb.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}

// Close closes the database. It is idempotent; a file database is
// checkpointed (the WAL folded into the main file) by SQLite as the last
// connection closes.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.stopCkpt != nil {
		close(s.stopCkpt)
		<-s.ckptDone
	}
	var err error
	if s.cdb != nil {
		err = s.cdb.Close()
	}
	for _, st := range s.stmts {
		err = errors.Join(err, st.Close())
	}
	err = errors.Join(err, s.rdb.Close())
	if s.wdb != s.rdb {
		err = errors.Join(err, s.wdb.Close())
	}
	return err
}

// checkpointLoop checkpoints the WAL every CheckpointInterval until Close.
// A checkpoint that fails (a busy database) is tried again next time; the
// data is safe in the WAL meanwhile.
func (s *Store) checkpointLoop() {
	defer close(s.ckptDone)
	t := time.NewTicker(CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopCkpt:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, _ = s.cdb.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
		cancel()
	}
}

// prepare prepares the write statements on the writer connection.
func (s *Store) prepare(ctx context.Context) error {
	s.stmts = map[string]*sql.Stmt{}
	for _, q := range writeQueries() {
		st, err := s.wdb.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("preparing %q: %w", q, err)
		}
		s.stmts[q] = st
	}
	return nil
}

// Update runs fn in one write transaction and commits it; when Update returns
// nil the writes are durable (see the package documentation for what that
// means). fn's error, or a failed commit, rolls everything back. Updates are
// serialised.
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return ErrClosed
	}
	sqlTx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(&Tx{ctx: ctx, tx: sqlTx, s: s}); err != nil {
		return errors.Join(err, sqlTx.Rollback())
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}
