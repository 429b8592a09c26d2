package hub

import (
	"context"
	"fmt"
	"testing"

	"github.com/porthole-iot/porthole/hubsim/internal/query"
)

// BenchmarkSnapshotQuery measures the no-database TwinQuerier: every page
// copies the hub's twins into a fresh in-memory SQLite database, so the
// cost grows with the fleet, not with the page.
func BenchmarkSnapshotQuery(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("twins=%d", n), func(b *testing.B) {
			set, err := NewSet(Config{Hubs: []HubConfig{{HostName: "bench.example.net"}}})
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
