//go:build race

package fleetbench

// raceEnabled: the race detector allows at most 8128 live goroutines, so the
// benchmarks run smaller fleets under it (a correctness run, not a
// measurement).
const raceEnabled = true
