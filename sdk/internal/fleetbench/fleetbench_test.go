package fleetbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Environment switches. Only envBench is needed; the rest change sizes.
const (
	envBench = "PORTHOLE_BENCH" // "1" runs the benchmarks
	// envOut overrides the directory the tables are written to (default
	// out/ at the module root).
	envOut = "PORTHOLE_BENCH_OUT"
)

// requireBench skips the test unless PORTHOLE_BENCH=1.
func requireBench(t *testing.T, what string) {
	t.Helper()
	if os.Getenv(envBench) != "1" {
		t.Skipf("%s is a fleet benchmark that runs for minutes of real time; set %s=1 (make bench) to run it", what, envBench)
	}
	if testing.Short() {
		t.Skipf("%s: skipped in -short mode", what)
	}
}

// fleetSize is the default fleet size: def, or underRace when the race
// detector is on (it allows at most 8128 live goroutines).
func fleetSize(t *testing.T, def, underRace int) int {
	if raceEnabled {
		t.Logf("race detector on: default fleet of %d instead of %d; the figures are not a measurement", underRace, def)
		return underRace
	}
	return def
}

// envInt reads a positive integer from the environment, else def. A value
// that is set but not a positive integer fails the test: a benchmark run
// with a silently ignored setting would report the wrong thing.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// envDuration reads a positive duration ("90s") from the environment, else def.
func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 30s", name, v)
	}
	return d
}

// outDir is where the tables go: $PORTHOLE_BENCH_OUT, else out/ next to
// go.mod.
func outDir() (string, error) {
	if d := os.Getenv(envOut); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "out"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// writeReport logs the report and writes it to out/<name>.
func writeReport(t *testing.T, name, text string) {
	t.Helper()
	t.Log("\n" + text)
	dir, err := outDir()
	if err != nil {
		t.Errorf("report: %v", err)
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("report: %v", err)
		return
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Errorf("report: %v", err)
		return
	}
	t.Logf("report written to %s", p)
}

// table renders rows of (name, note, value) as aligned text; the note is a
// short tag such as the target.
type table struct {
	title string
	rows  [][3]string
}

func (tb *table) add(name, value, note string) {
	tb.rows = append(tb.rows, [3]string{name, value, note})
}

func (tb *table) addf(name, note, format string, args ...any) {
	tb.add(name, fmt.Sprintf(format, args...), note)
}

func (tb *table) String() string {
	var b strings.Builder
	b.WriteString(tb.title + "\n")
	b.WriteString(strings.Repeat("=", len(tb.title)) + "\n")
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, r := range tb.rows {
		fmt.Fprintf(w, "%s\t%s\t%s\n", r[0], r[2], r[1])
	}
	_ = w.Flush()
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// summary is the distribution of a sample.
type summary struct {
	N                   int
	Mean                float64
	Min, P50, P99, Max  float64
	sortedForPercentile []float64
}

// summarize sorts a copy of xs and returns its distribution; percentiles
// use the nearest-rank method (the smallest value with at least p% of the
// sample at or below it).
func summarize(xs []float64) summary {
	s := summary{N: len(xs)}
	if len(xs) == 0 {
		return s
	}
	sorted := slices.Clone(xs)
	slices.Sort(sorted)
	var sum float64
	for _, x := range sorted {
		sum += x
	}
	s.Mean = sum / float64(len(sorted))
	s.Min, s.Max = sorted[0], sorted[len(sorted)-1]
	s.sortedForPercentile = sorted
	s.P50 = s.percentile(50)
	s.P99 = s.percentile(99)
	return s
}

func (s summary) percentile(p float64) float64 {
	n := len(s.sortedForPercentile)
	if n == 0 {
		return 0
	}
	rank := int(p / 100 * float64(n))
	if float64(rank) < p/100*float64(n) {
		rank++ // ceil
	}
	rank = max(rank, 1)
	return s.sortedForPercentile[min(rank, n)-1]
}

func durations(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d)
	}
	return out
}

// ms formats nanoseconds as milliseconds.
func ms(ns float64) string { return strconv.FormatFloat(ns/1e6, 'f', 1, 64) + " ms" }

// quietLogger sends warnings and errors to the test log until stop is
// called (logging after a test ends panics), and drops the rest: at fleet
// scale info logs would drown the report.
func quietLogger(t *testing.T) *slog.Logger {
	done := new(atomic.Bool)
	t.Cleanup(func() { done.Store(true) })
	return slog.New(slog.NewTextHandler(testWriter{t, done}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	t    *testing.T
	done *atomic.Bool
}

func (w testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// benchContext is a context for the whole benchmark, bounded so that a
// hang ends as a failure with a report rather than at the test binary's
// timeout.
func benchContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
