package query

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkExecute runs typical queries over a hub of n device twins in a
// file database shaped like the store's (primary key hub, device_id,
// module_id). Report: ns/op per page.
func BenchmarkExecute(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		db := benchDB(b, n)
		for _, bq := range []struct{ name, q string }{
			{"select-star-page100", "SELECT * FROM devices"},
			{"where-tag-page100", "SELECT * FROM devices WHERE tags.site = 'site-3' AND properties.reported.temp > 20"},
			{"projection-page100", "SELECT deviceId, properties.reported.fw AS fw FROM devices WHERE STARTSWITH(deviceId, 'dev-000')"},
			{"group-by-count", "SELECT tags.site AS site, COUNT() AS n FROM devices GROUP BY tags.site"},
		} {
			b.Run(fmt.Sprintf("twins=%d/%s", n, bq.name), func(b *testing.B) {
				ctx := context.Background()
				for b.Loop() {
					res, err := Execute(ctx, db, "h", bq.q, Page{})
					if err != nil || len(res.Items) == 0 {
						b.Fatal(len(res.Items), err)
					}
				}
			})
		}
	}
}

func benchDB(b *testing.B, n int) *sql.DB {
	b.Helper()
	db, err := sql.Open("sqlite", filepath.Join(b.TempDir(), "twins.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec(fixtureSchema); err != nil {
		b.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("dev-%05d", i)
		doc, _ := json.Marshal(twin(id, "", "enabled", "Connected",
			map[string]any{"site": fmt.Sprintf("site-%d", i%10), "rank": i},
			map[string]any{"fw": "1.0", "$version": 1},
			map[string]any{"fw": "1.0", "temp": float64(i % 40), "$version": 1}))
		if _, err := tx.Exec(`INSERT INTO twin_docs VALUES ('h', ?, '', ?)`, id, string(doc)); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return db
}
