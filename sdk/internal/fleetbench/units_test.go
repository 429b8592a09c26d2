package fleetbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/dps"
)

// The helpers the benchmarks report with run in plain go test.

func TestSummarize(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(100 - i) // 100 … 1, unsorted on purpose
	}
	for _, tc := range []struct {
		name                   string
		in                     []float64
		mean, p50, p99, lo, hi float64
	}{
		{"empty", nil, 0, 0, 0, 0, 0},
		{"one", []float64{7}, 7, 7, 7, 7, 7},
		{"two", []float64{2, 1}, 1.5, 1, 2, 1, 2},
		{"hundred", hundred, 50.5, 50, 99, 1, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := summarize(tc.in)
			if s.N != len(tc.in) || s.Mean != tc.mean || s.P50 != tc.p50 || s.P99 != tc.p99 || s.Min != tc.lo || s.Max != tc.hi {
				t.Errorf("summarize = %+v", s)
			}
		})
	}
}

func TestPeaks(t *testing.T) {
	for _, tc := range []struct {
		name               string
		secs               []secondCount
		window             time.Duration
		perSecond, window_ int
	}{
		{"empty", nil, time.Minute, 0, 0},
		{"burst then trickle", []secondCount{{100, 61, 1939}, {101, 10, 0}, {102, 10, 0}}, time.Minute, 61, 2020},
		// With a 2 s window, second 100 drops out once 102 is counted.
		{"window slides", []secondCount{{100, 5, 5}, {101, 1, 0}, {102, 30, 0}, {110, 2, 0}}, 2 * time.Second, 30, 31},
		// A partial second in the window rounds up to a whole one.
		{"window rounds up", []secondCount{{100, 4, 0}, {101, 4, 0}, {102, 4, 0}}, 1500 * time.Millisecond, 4, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, pw := peaks(tc.secs, tc.window)
			if ps != tc.perSecond || pw != tc.window_ {
				t.Errorf("peaks = %d, %d; want %d, %d", ps, pw, tc.perSecond, tc.window_)
			}
		})
	}
}

func TestTable(t *testing.T) {
	tb := &table{title: "T"}
	tb.add("alpha", "1", "")
	tb.addf("b", "target 0", "%d", 22)
	want := "T\n=\nalpha            1\nb      target 0  22\n"
	if got := tb.String(); got != want {
		t.Errorf("table:\n%q\nwant\n%q", got, want)
	}
}

func TestIdealConverge(t *testing.T) {
	if got := idealConverge(2000, 600, time.Minute); got != 193900*time.Millisecond {
		t.Errorf("idealConverge(2000, 600/min) = %v", got)
	}
	if got := idealConverge(10, 600, time.Minute); got != 0 {
		t.Errorf("a fleet within the burst: %v", got)
	}
}

// The client-side early check: a 429's Retry-After counts from the last
// bytes received; the next large write is the next request.
func TestTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	throttled := &dps.StatusError{StatusCode: 429, RetryAfter: 3 * time.Second, HasRetryAfter: true}
	for _, tc := range []struct {
		name          string
		next          time.Duration // next request after the answer was read
		err           error
		early, margin int
		retries429    int
	}{
		{"on time", 3 * time.Second, throttled, 0, 1, 1},
		{"late", 4 * time.Second, throttled, 0, 1, 1},
		{"early", 2999 * time.Millisecond, throttled, 1, 1, 1},
		{"wrapped", 3 * time.Second, fmt.Errorf("dps: register: %w", throttled), 0, 1, 1},
		{"503 is not timed", time.Second, &dps.StatusError{StatusCode: 503}, 0, 0, 0},
		{"429 without Retry-After", time.Second, &dps.StatusError{StatusCode: 429}, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &tracker{}
			tr.read(t0)
			tr.retrying(tc.err)
			tr.write(t0.Add(tc.next))
			tr.write(t0.Add(tc.next + time.Hour)) // later traffic is not a retry
			if tr.early != tc.early || len(tr.margins) != tc.margin || tr.retries429 != tc.retries429 || tr.retries != 1 {
				t.Errorf("tracker %+v", tr)
			}
		})
	}
}

// trackHandler takes the error from the dps client's retry log line and
// passes only warnings on.
func TestTrackHandler(t *testing.T) {
	var out strings.Builder
	tr := &tracker{}
	log := slog.New(&trackHandler{tr: tr, next: slog.NewTextHandler(&out, nil)}).With("device", "d1")
	log.Info(msgRetrying, "op", "register", "wait", time.Second, "err", &dps.StatusError{StatusCode: 429, HasRetryAfter: true})
	log.Info("dps: device assigned")
	log.Warn("dps: unexpected mqtt message", "err", errors.New("x"))
	if tr.retries != 1 || tr.seen429 != 1 {
		t.Errorf("tracker %+v", tr)
	}
	if got := out.String(); !strings.Contains(got, "unexpected mqtt message") || !strings.Contains(got, "device=d1") || strings.Contains(got, "assigned") {
		t.Errorf("passed on: %q", got)
	}
	if (&trackHandler{tr: tr, next: slog.DiscardHandler}).Enabled(context.Background(), slog.LevelDebug) {
		t.Error("debug records enabled")
	}
}

func TestProcStatus(t *testing.T) {
	rss, err := procStatus("self", "VmRSS")
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if rss <= 0 {
		t.Errorf("VmRSS = %d", rss)
	}
	if _, err := procStatus("self", "NoSuchField"); err == nil {
		t.Error("a missing field gave no error")
	}
}

func TestEventTapRead(t *testing.T) {
	for _, tc := range []struct {
		name                           string
		stream                         string
		acked                          []int
		total, dropped, lines, missing int
		extra                          int
	}{
		{name: "events only", stream: `{"deviceId":"load-0000","body":"MA=="}` + "\n" + `{"deviceId":"load-0001","body":"MA=="}` + "\n",
			acked: []int{1, 1}, total: 2},
		{name: "drop lines are not events", stream: `{"deviceId":"load-0000","body":"MA=="}` + "\n" + `{"dropped":3}` + "\n" + `{"dropped":5}` + "\n" + `{"dropped":5}` + "\n",
			acked: []int{1, 1}, total: 1, dropped: 5, lines: 3, missing: 1},
		{name: "final zero", stream: `{"deviceId":"load-0001","body":"MA=="}` + "\n" + `{"dropped":0}` + "\n",
			acked: []int{0, 1}, total: 1, lines: 1},
		{name: "foreign and garbage lines count as extra events", stream: `{"deviceId":"other","body":"MA=="}` + "\nnot json\n",
			acked: []int{0, 0}, total: 2, extra: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tap := newEventTap(func() {}, len(tc.acked))
			tap.read(strings.NewReader(tc.stream))
			dropped, lines := tap.dropCount()
			missing, extra, _ := tap.compare(tc.acked)
			if tap.total != tc.total || dropped != tc.dropped || lines != tc.lines || missing != tc.missing || extra != tc.extra {
				t.Errorf("total %d, dropped %d in %d lines, missing %d, extra %d; want %d, %d in %d, %d, %d",
					tap.total, dropped, lines, missing, extra, tc.total, tc.dropped, tc.lines, tc.missing, tc.extra)
			}
		})
	}
}

func TestParseMemStats(t *testing.T) {
	full := `heap profile: 1: 2 [3: 4] @ heap/1048576
# runtime.MemStats
# Alloc = 100
# HeapIdle = 4000
# HeapInuse = 3000
# HeapReleased = 1000
# HeapObjects = 42
# Stack = 2048 / 4096
# MSpan = 10 / 20
# MCache = 30 / 40
# BuckHashSys = 5
# GCSys = 6
# OtherSys = 7
# Sys = 9999
# PauseNs = [1 2 3]
`
	tests := []struct {
		name    string
		in      string
		want    memBreakdown
		wantErr string
	}{
		{"full", full, memBreakdown{HeapInuse: 3000, HeapIdle: 4000, HeapReleased: 1000, HeapObjects: 42, StackInuse: 2048, Runtime: 20 + 40 + 6 + 7 + 5, Sys: 9999}, ""},
		{"missing field", strings.Replace(full, "# GCSys = 6\n", "", 1), memBreakdown{}, "no GCSys"},
		{"empty", "", memBreakdown{}, "no HeapInuse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMemStats(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseMemStats = %+v, %v; want %+v", got, err, tt.want)
			}
			if got.retainedIdle() != 3000 {
				t.Errorf("retainedIdle = %d, want 3000", got.retainedIdle())
			}
		})
	}
}

func TestRoundNoteAndMedian(t *testing.T) {
	f := loadFigures{roundRates: []float64{300, 100, 200}}
	if m := f.median(); m != 200 {
		t.Errorf("median = %v, want 200", m)
	}
	if s := roundNote(f.roundRates); s != " (msg/s per round: 300, 100, 200)" {
		t.Errorf("roundNote = %q", s)
	}
	if s := roundNote([]float64{5}); s != "" {
		t.Errorf("roundNote of one round = %q, want empty", s)
	}
}

func TestStormFigures(t *testing.T) {
	s := time.Second
	lat := []time.Duration{0, 100 * time.Millisecond, 900 * time.Millisecond, 999 * time.Millisecond, s, 1500 * time.Millisecond, 5 * s}
	if got := peakPerSecond(lat); got != 4 { // 0.9, 0.999, 1.0, 1.5 within [0.9, 1.9)
		t.Errorf("peakPerSecond = %d, want 4", got)
	}
	if lat[0] != 0 || lat[6] != 5*s {
		t.Errorf("peakPerSecond reordered its argument: %v", lat)
	}
	if got := peakPerSecond(nil); got != 0 {
		t.Errorf("peakPerSecond(nil) = %d, want 0", got)
	}
	if got := retriedAttempts([]int{1, 3, 0, 2}); got != 3 {
		t.Errorf("retriedAttempts = %d, want 3", got)
	}
}
