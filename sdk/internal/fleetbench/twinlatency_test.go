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
	envTwinUpdates = "PORTHOLE_BENCH_TWIN_UPDATES" // total service-side twin updates per mode (over all rounds)
	envTwinWorkers = "PORTHOLE_BENCH_TWIN_WORKERS" // concurrent callers
	envTwinRounds  = "PORTHOLE_BENCH_TWIN_ROUNDS"  // alternating rounds the updates are split into
)

// TestTwinLatency measures service-side twin updates (PATCH /twins/{id}
// over HTTPS, the way the SDK's service client sends them) against the
// hubsim binary with its state in the SQLite file (storage.mode sqlite, the
// default: every update is in the WAL before it is answered) and in an
// in-memory SQLite database (storage.mode memory: the same SQL, no file),
// and prints both side by side: latency p50/p99, throughput and the cost of
// the file. hubsim has no mode without a database (the query language runs
// on it); BenchmarkTwinUpdate in hubsim/internal/hub compares against no
// store at all.
//
// On a shared, loaded machine one long run per mode measured the load as
// much as the file (29.5%, 4.9% and −37% in three runs). So both processes
// run side by side for the whole test and the updates go in alternating
// rounds (file, memory, memory, file, …: each mode goes first in half of
// the rounds); the cost is computed per pair of adjacent rounds and the
// report gives its median with the spread (min, quartiles, max).
func TestTwinLatency(t *testing.T) {
	requireBench(t, "TestTwinLatency")
	updates := envInt(t, envTwinUpdates, fleetSize(t, 10000, 500))
	workers := envInt(t, envTwinWorkers, 16)
	rounds := envInt(t, envTwinRounds, fleetSize(t, 20, 2))
	const devices = 100
	ctx := benchContext(t, 10*time.Minute)
	type target struct {
		mode string
		c    *service.Client
		lat  []time.Duration // every round's latencies
		secs float64         // time spent in its rounds
		n    int             // updates sent
	}
	start := func(mode string) *target {
		cfg := filepath.Join(t.TempDir(), "hubsim.yaml")
		if err := os.WriteFile(cfg, []byte("storage:\n  mode: "+mode+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		sim := startHubsimArgs(t, ctx, "-config", cfg)
		c, err := service.New(service.Config{ConnectionString: sim.hubConnectionString(t, loadHub), RootCAs: sim.roots, DialContext: sim.dial})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		for i := range devices {
			if _, err := c.CreateDevice(ctx, fmt.Sprintf("twin-%03d", i)); err != nil {
				t.Fatal(err)
			}
		}
		return &target{mode: mode, c: c}
	}
	on, off := start("sqlite"), start("memory")
	perRound := max(updates/rounds, workers)
	// round sends perRound updates to tg from workers callers and returns
	// its throughput (updates/s).
	round := func(tg *target, r int) float64 {
		lat := make([]time.Duration, perRound)
		var next, failed atomic.Int64
		var wg sync.WaitGroup
		t0 := time.Now()
		for range workers {
			wg.Add(1)
			go func() { // owned by this round: waited for below
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= perRound {
						return
					}
					n := r*perRound + i
					s := time.Now()
					_, err := tg.c.UpdateTwin(ctx, fmt.Sprintf("twin-%03d", n%devices), service.TwinPatch{
						Desired: map[string]any{"n": n, "cfg": map[string]any{"rate": n % 7}}}, "*")
					lat[i] = time.Since(s)
					if err != nil {
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(t0).Seconds()
		if n := failed.Load(); n > 0 {
			t.Errorf("%s round %d: %d of %d twin updates failed", tg.mode, r, n, perRound)
		}
		tg.lat = append(tg.lat, lat...)
		tg.secs += elapsed
		tg.n += perRound
		return float64(perRound) / elapsed
	}
	var costs []float64 // per round pair: 1 - file rate / memory rate, in %
	for r := range rounds {
		first, second := on, off
		if r%2 == 1 {
			first, second = off, on
		}
		a := round(first, r)
		b := round(second, r)
		fileRate, memRate := a, b
		if first == off {
			fileRate, memRate = b, a
		}
		costs = append(costs, 100*(1-fileRate/memRate))
	}
	onLat, offLat := summarize(durations(on.lat)), summarize(durations(off.lat))
	cost := summarize(costs)
	tb := &table{title: fmt.Sprintf("Twin updates: %d rounds of %d PATCH /twins per mode, alternating, from %d concurrent callers over %d devices; two hubsim binaries side by side, state in a file (sqlite) vs in memory", rounds, perRound, workers, devices)}
	tb.add("p50 latency, sqlite / memory", ms(onLat.P50)+" / "+ms(offLat.P50), "")
	tb.add("p99 latency, sqlite / memory", ms(onLat.P99)+" / "+ms(offLat.P99), "")
	tb.addf("throughput over all rounds, sqlite / memory", "", "%.0f / %.0f updates/s", float64(on.n)/on.secs, float64(off.n)/off.secs)
	tb.addf("throughput cost of the file, median of rounds", "target ≤ 20%", "%.1f%%", cost.P50)
	tb.addf("  spread: min / p25 / p75 / max", "", "%.1f / %.1f / %.1f / %.1f %%", cost.Min, cost.percentile(25), cost.percentile(75), cost.Max)
	writeReport(t, "bench-twin-latency.txt", tb.String())
}
