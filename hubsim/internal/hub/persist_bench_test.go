package hub

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/porthole-iot/porthole/hubsim/internal/store"
)

// BenchmarkTwinUpdate compares service-side twin updates (PATCH /twins
// without the HTTP layer) with no store, the in-memory database, the file
// database (synchronous=NORMAL, the default) and the durable file database
// (synchronous=FULL), from parallel callers over 100 devices.
//
//	go test -run '^$' -bench TwinUpdate ./hubsim/internal/hub/
func BenchmarkTwinUpdate(b *testing.B) {
	for _, mode := range []string{"none", "memory", "sqlite", "sqlite-durable"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			var st *store.Store
			var err error
			switch mode {
			case "memory":
				st, err = store.OpenMemory(ctx)
			case "sqlite", "sqlite-durable":
				st, err = store.Open(ctx, filepath.Join(b.TempDir(), store.FileName), store.Options{Durable: mode == "sqlite-durable"})
			}
			if err != nil {
				b.Fatal(err)
			}
			set, err := NewSet(Config{Hubs: []HubConfig{{HostName: persistHost}}, Store: st})
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				set.Close()
				if st != nil {
					st.Close()
				}
			}()
			h, _ := set.Hub(persistHost)
			const devices = 100
			for i := range devices {
				if _, err := h.CreateDevice(ctx, Device{DeviceID: fmt.Sprintf("d%03d", i)}); err != nil {
					b.Fatal(err)
				}
			}
			var n atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					id := fmt.Sprintf("d%03d", i%devices)
					if _, err := h.UpdateTwin(ctx, id, "", TwinPatch{Desired: map[string]any{"n": i, "cfg": map[string]any{"rate": i % 7}}}, "*"); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
