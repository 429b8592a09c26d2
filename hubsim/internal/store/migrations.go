package store

// migrations are the schema steps; migrations[i] takes the schema from
// version i to i+1. Append only: a released step never changes.
var migrations = []string{
	// 1: registry, twins, C2D queues, DPS records.
	`
CREATE TABLE hub_meta (
	hub TEXT PRIMARY KEY,
	seq INTEGER NOT NULL -- the hub's etag / generation counter
);
CREATE TABLE identities (
	hub       TEXT NOT NULL,
	device_id TEXT NOT NULL,
	module_id TEXT NOT NULL DEFAULT '',
	state     TEXT NOT NULL, -- the hub's record of the identity and its twin (JSON)
	PRIMARY KEY (hub, device_id, module_id)
);
CREATE TABLE twin_docs (
	hub       TEXT NOT NULL,
	device_id TEXT NOT NULL,
	module_id TEXT NOT NULL DEFAULT '',
	doc       TEXT NOT NULL, -- the twin as GET /twins/{id} shows it (JSON)
	PRIMARY KEY (hub, device_id, module_id)
);
CREATE TABLE c2d (
	id        INTEGER PRIMARY KEY AUTOINCREMENT, -- queue order
	hub       TEXT NOT NULL,
	device_id TEXT NOT NULL,
	topic     TEXT NOT NULL,
	body      BLOB NOT NULL
);
CREATE INDEX c2d_device ON c2d (hub, device_id, id);
CREATE TABLE dps_enrollments (
	id  TEXT PRIMARY KEY, -- lower-case registration ID
	doc TEXT NOT NULL
);
CREATE TABLE dps_groups (
	id  TEXT PRIMARY KEY, -- lower-case enrollment group ID
	doc TEXT NOT NULL
);
CREATE TABLE dps_registrations (
	id  TEXT PRIMARY KEY, -- lower-case registration ID
	doc TEXT NOT NULL
);
`,
}

// SchemaVersion is the schema version this build creates and understands.
var SchemaVersion = len(migrations)
