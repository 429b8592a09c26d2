// Package store keeps hubsim's durable state in an embedded SQLite database
// (modernc.org/sqlite, cgo-free, through database/sql): the IoT hubs'
// registries (devices, modules, keys, status), twins (tags, desired and
// reported properties with their versions and metadata, etags), pending
// cloud-to-device messages, and DPS's individual enrollments, enrollment
// groups and registration records. Telemetry is a live tap and is not stored.
//
// # How the components use it
//
// The hub and DPS keep their in-memory maps as the read cache and write
// through: every mutation is written (one transaction, see Store.Update)
// before it is acknowledged to the client, while the component's own lock is
// held, so the database sees mutations in the order clients see them. On
// start the components load their rows back (Identities, C2D, Records). The
// store knows nothing of hub or DPS types: it keeps their records as JSON
// text they encode and decode themselves.
//
// # Durability settings, and why
//
// A file database runs in WAL mode with synchronous=NORMAL. A transaction
// commits by appending to the WAL file with write(2); once Update returns,
// the commit is in the operating system's page cache, so it survives kill -9
// of the process (the next open replays the WAL). It does not necessarily
// survive power loss or a kernel crash: with NORMAL the WAL is fsynced only at
// checkpoints, so the last transactions before a power cut may roll back (the
// database stays consistent; it never corrupts). That is the right trade for a
// simulator: synchronous=FULL costs an fsync per acknowledged write (on this
// class of machine milliseconds each, serialised behind the one writer)
// against a failure mode a lab environment does not need to survive.
// Options.Durable selects synchronous=FULL for those who want it anyway.
// Writers are serialised on one connection (SQLite allows one writer at a
// time; queuing in Go is cheaper than busy-waiting in SQLite); readers use
// their own connections and see the last committed state (WAL snapshot
// isolation). busy_timeout is set so that a checkpoint never fails a reader.
//
// OpenMemory gives the same schema in memory (no file, no fsync) for
// hubsimtest: the query language is SQL over this schema, so tests need the
// tables even when they do not need durability.
//
// # Schema versions
//
// The schema is created by numbered migrations (migrations.go) and its
// version is PRAGMA user_version. Open applies the missing migrations in one
// transaction each; a database whose version is newer than this build knows
// is refused with ErrFutureSchema (naming both versions) rather than
// misread. Migrations are append-only: never edit a released one.
//
// # Contract for the query language (twin_docs)
//
// DB returns the *sql.DB for read-only queries (with a file database its
// connections are PRAGMA query_only; writes go through Update). Table
// twin_docs has one row per device and module twin:
//
//	hub       TEXT NOT NULL            -- the hub's host name as configured
//	device_id TEXT NOT NULL
//	module_id TEXT NOT NULL DEFAULT '' -- '' for a device twin
//	doc       TEXT NOT NULL            -- the twin JSON document
//
// doc has exactly the shape hubsim's REST GET /twins/{id} (and
// /twins/{id}/modules/{mid}) answers: deviceId, moduleId (modules only),
// etag, deviceEtag, version, status, statusReason, statusUpdateTime,
// connectionState, lastActivityTime, cloudToDeviceMessageCount,
// authenticationType, x509Thumbprint, capabilities (devices only), tags,
// properties.desired and properties.reported with their $version and
// $metadata. The hub rewrites a row in the same transaction as every change
// to the identity or twin, on every connect and disconnect, and when the
// device's cloud-to-device queue grows or shrinks. When hubsim starts, every
// row reads connectionState "Disconnected" (nothing is connected yet).
//
// lastActivityTime is coarse in the database: it is written on connect,
// disconnect and with every other persisted change of that identity, not on
// each telemetry message (the in-memory value, which the REST API shows, is
// exact). Rows for hubs that are no longer configured stay in the table;
// filter on hub.
//
// With OpenMemory the database has one connection: a reader must not hold
// rows open while waiting on anything that writes.
package store
