package fleetbench

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/service"
)

// Twin-update benchmark settings (environment).
const (
	envTwinUpdates = "PORTHOLE_BENCH_TWIN_UPDATES" // total service-side twin updates per mode
	envTwinWorkers = "PORTHOLE_BENCH_TWIN_WORKERS" // concurrent callers
)

// TestTwinLatency measures service-side twin updates (PATCH /twins/{id}
// over HTTPS, the way the SDK's service client sends them) against the
// hubsim binary with its state in the SQLite file (storage.mode sqlite, the
// default: every update is in the WAL before it is answered) and in an
// in-memory SQLite database (storage.mode memory: the same SQL, no file),
// in the same run, and prints both side by side: latency p50/p99 and
// throughput, with the cost of the file as a ratio. hubsim has no mode
// without a database (the query language runs on it); BenchmarkTwinUpdate
// in hubsim/internal/hub compares against no store at all.
func TestTwinLatency(t *testing.T) {
	requireBench(t, "TestTwinLatency")
	updates := envInt(t, envTwinUpdates, fleetSize(t, 5000, 500))
	workers := envInt(t, envTwinWorkers, 16)
	const devices = 100
	type result struct {
		lat  summary
		rate float64
	}
	run := func(mode string) result {
		var res result
		t.Run(mode, func(t *testing.T) {
			ctx := benchContext(t, 10*time.Minute)
			cfg := filepath.Join(t.TempDir(), "hubsim.yaml")
			if err := os.WriteFile(cfg, []byte("storage:\n  mode: "+mode+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			sim := startHubsimArgs(t, ctx, "-config", cfg)
			c, err := service.New(service.Config{ConnectionString: sim.hubConnectionString(t, loadHub), RootCAs: sim.roots, DialContext: sim.dial})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := range devices {
				if _, err := c.CreateDevice(ctx, fmt.Sprintf("twin-%03d", i)); err != nil {
					t.Fatal(err)
				}
			}
			lat := make([]time.Duration, updates)
			var next atomic.Int64
			var failed atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for range workers {
				wg.Add(1)
				go func() { // owned by this subtest: waited for below
					defer wg.Done()
					for {
						i := int(next.Add(1)) - 1
						if i >= updates {
							return
						}
						t0 := time.Now()
						_, err := c.UpdateTwin(ctx, fmt.Sprintf("twin-%03d", i%devices), service.TwinPatch{
							Desired: map[string]any{"n": i, "cfg": map[string]any{"rate": i % 7}}}, "*")
						lat[i] = time.Since(t0)
						if err != nil {
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			if n := failed.Load(); n > 0 {
				t.Errorf("%d of %d twin updates failed", n, updates)
			}
			res = result{lat: summarize(durations(lat)), rate: float64(updates) / elapsed.Seconds()}
		})
		return res
	}
	on, off := run("sqlite"), run("memory")
	tb := &table{title: fmt.Sprintf("Twin updates: %d PATCH /twins from %d concurrent callers over %d devices, hubsim binary, state in a file (sqlite) vs in memory", updates, workers, devices)}
	tb.add("p50 latency, sqlite / memory", ms(on.lat.P50)+" / "+ms(off.lat.P50), "")
	tb.add("p99 latency, sqlite / memory", ms(on.lat.P99)+" / "+ms(off.lat.P99), "")
	tb.addf("throughput, sqlite / memory", "", "%.0f / %.0f updates/s", on.rate, off.rate)
	cost := 0.0
	if off.rate > 0 {
		cost = 100 * (1 - on.rate/off.rate)
	}
	tb.addf("throughput cost of the file", "target ≤ 20%", "%.1f%%", cost)
	writeReport(t, "bench-twin-latency.txt", tb.String())
}
