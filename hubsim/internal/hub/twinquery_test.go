package hub

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/porthole-iot/porthole/hubsim/internal/query"
	"github.com/porthole-iot/porthole/hubsim/internal/store"
)

// BenchmarkTwinQuery measures one page of a filtered twin query through
// the store's twin_docs (SQLTwins) and through the no-store querier, which
// copies every twin into a fresh in-memory database per page, so its cost
// grows with the fleet, not with the page.
func BenchmarkTwinQuery(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, mode := range []string{"store", "snapshot"} {
			b.Run(fmt.Sprintf("twins=%d/%s", n, mode), func(b *testing.B) {
				cfg := Config{Hubs: []HubConfig{{HostName: "bench.example.net"}}}
				if mode == "store" {
					st, err := store.Open(context.Background(), filepath.Join(b.TempDir(), "hubsim.db"), store.Options{})
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { st.Close() })
					cfg.Store = st
				}
				set, err := NewSet(cfg)
				if err != nil {
					b.Fatal(err)
				}
				h, _ := set.Hub("bench.example.net")
				ctx := context.Background()
				for i := range n {
					id := fmt.Sprintf("dev-%05d", i)
					if _, err := h.CreateDevice(ctx, Device{DeviceID: id}); err != nil {
						b.Fatal(err)
					}
					if _, err := h.UpdateTwin(ctx, id, "", TwinPatch{Tags: map[string]any{"site": fmt.Sprintf("s%d", i%10)}}, ""); err != nil {
						b.Fatal(err)
					}
				}
				for b.Loop() {
					res, err := set.cfg.Twins.QueryTwins(ctx, "bench.example.net", "SELECT * FROM devices WHERE tags.site = 's3'", query.Page{})
					if err != nil || len(res.Items) != 100 {
						b.Fatal(len(res.Items), err)
					}
				}
			})
		}
	}
}

// TestSQLTwinsServesRESTQueries: with Config.Twins set to SQLTwins, POST
// /devices/query reads the database's twin_docs (here a fixture holding a
// twin the in-memory hub does not have), filtered to the hub's host name.
func TestSQLTwinsServesRESTQueries(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "twins.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec(`CREATE TABLE twin_docs (hub TEXT NOT NULL, device_id TEXT NOT NULL,
		module_id TEXT NOT NULL DEFAULT '', doc TEXT NOT NULL);
		INSERT INTO twin_docs VALUES
		('hub1.example.net', 'db-only', '', '{"deviceId":"db-only","tags":{"site":"lab"}}'),
		('hub1.example.net', 'db-other', '', '{"deviceId":"db-other","tags":{"site":"field"}}'),
		('hub2.example.net', 'elsewhere', '', '{"deviceId":"elsewhere","tags":{"site":"lab"}}')`); err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, func(c *Config) { c.Twins = SQLTwins{DB: db} })
	c := e.rest("hub1.example.net", "service")
	r := c.do("POST", "/devices/query", map[string]string{"query": "SELECT deviceId FROM devices WHERE tags.site = 'lab'"}, nil)
	if r.status != 200 || string(r.body) != `[{"deviceId":"db-only"}]` {
		t.Fatalf("%d %s", r.status, r.body)
	}
}
