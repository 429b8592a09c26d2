package query

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
	_ "modernc.org/sqlite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixtureSchema is the store contract: the table (or view) Execute reads.
const fixtureSchema = `CREATE TABLE twin_docs (
	hub TEXT NOT NULL,
	device_id TEXT NOT NULL,
	module_id TEXT NOT NULL DEFAULT '',
	doc TEXT NOT NULL,
	PRIMARY KEY (hub, device_id, module_id)
)`

// twin builds a twin document in the shape GET /twins/{id} returns.
func twin(dev, mod, status, conn string, tags, desired, reported map[string]any) map[string]any {
	d := map[string]any{
		"deviceId": dev, "etag": "AAAAAAAAAAE=", "deviceEtag": "MQ==", "status": status,
		"statusUpdateTime": "0001-01-01T00:00:00Z", "connectionState": conn,
		"lastActivityTime": "0001-01-01T00:00:00Z", "cloudToDeviceMessageCount": 0,
		"authenticationType": "sas", "x509Thumbprint": map[string]any{"primaryThumbprint": nil, "secondaryThumbprint": nil},
		"version": 2, "tags": tags,
		"properties": map[string]any{"desired": desired, "reported": reported},
	}
	if mod != "" {
		d["moduleId"] = mod
	}
	return d
}

type fixtureRow struct {
	hub, dev, mod string
	doc           map[string]any
}

// fixture is a small fleet on two hubs. Device ids sort as listed.
var fixture = []fixtureRow{
	{"h1", "dev-a", "", twin("dev-a", "", "enabled", "Connected",
		map[string]any{"site": "north", "floor": 1, "owner": map[string]any{"name": "ana"}},
		map[string]any{"fw": "1.0", "$version": 3}, map[string]any{"fw": "1.0", "temp": 21.5, "ok": true, "$version": 4})},
	{"h1", "dev-b", "", twin("dev-b", "", "enabled", "Disconnected",
		map[string]any{"site": "north", "floor": 2},
		map[string]any{"fw": "2.0", "$version": 1}, map[string]any{"fw": "1.0", "temp": 30, "ok": false, "$version": 2})},
	{"h1", "dev-c", "", twin("dev-c", "", "disabled", "Disconnected",
		map[string]any{"site": "south", "floor": "2", "note": nil},
		map[string]any{"$version": 1}, map[string]any{"$version": 1})},
	{"h1", "dev-d", "", twin("dev-d", "", "enabled", "Connected",
		map[string]any{"site": "50%_off", "floor": 3, "list": []any{1, 2}, "u": "é€𝄞"},
		map[string]any{"fw": "2.0", "$version": 1}, map[string]any{"fw": "2.0", "temp": 19, "$version": 1})},
	{"h1", "gw-1", "", twin("gw-1", "", "enabled", "Connected",
		map[string]any{}, map[string]any{"$version": 1}, map[string]any{"$version": 1})},
	{"h1", "dev-a", "mod-x", twin("dev-a", "mod-x", "enabled", "Connected",
		map[string]any{"role": "edge"}, map[string]any{"$version": 1}, map[string]any{"$version": 1})},
	{"h1", "dev-a", "mod-y", twin("dev-a", "mod-y", "enabled", "Disconnected",
		map[string]any{"role": "agent"}, map[string]any{"$version": 1}, map[string]any{"$version": 1})},
	{"h2", "dev-a", "", twin("dev-a", "", "enabled", "Connected",
		map[string]any{"site": "north"}, map[string]any{"$version": 1}, map[string]any{"$version": 1})},
}

// openFixture creates a database holding the fixture.
func openFixture(tb testing.TB, dir string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "twins.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec(fixtureSchema); err != nil {
		tb.Fatal(err)
	}
	for _, r := range fixture {
		b, err := json.Marshal(r.doc)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO twin_docs (hub, device_id, module_id, doc) VALUES (?, ?, ?, ?)`, r.hub, r.dev, r.mod, string(b)); err != nil {
			tb.Fatal(err)
		}
	}
	return db
}

// ids lists "device[/module]" of twin items.
func ids(tb testing.TB, items []json.RawMessage) []string {
	tb.Helper()
	out := []string{}
	for _, it := range items {
		var t struct {
			DeviceID string `json:"deviceId"`
			ModuleID string `json:"moduleId"`
		}
		if err := json.Unmarshal(it, &t); err != nil {
			tb.Fatalf("item %s: %v", it, err)
		}
		id := t.DeviceID
		if t.ModuleID != "" {
			id += "/" + t.ModuleID
		}
		out = append(out, id)
	}
	return out
}

// all runs text to the end, page by page, returning every item.
func all(tb testing.TB, db *sql.DB, hub, text string, pageSize int) (items []json.RawMessage, pages int) {
	tb.Helper()
	p := Page{MaxItems: pageSize}
	for {
		res, err := Execute(context.Background(), db, hub, text, p)
		if err != nil {
			tb.Fatalf("%s: %v", text, err)
		}
		pages++
		items = append(items, res.Items...)
		if res.Continuation == "" {
			return items, pages
		}
		if pages > 100 {
			tb.Fatalf("%s: more than 100 pages", text)
		}
		p.Continuation = res.Continuation
	}
}
