package retry_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/retry/retrytest"
)

var start = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

var (
	err503 = &retry.StatusError{Code: 503}
	err401 = &retry.StatusError{Code: 401}
)

func throttle(d time.Duration) error {
	return &retry.StatusError{Code: 429, RetryAfter: d, HasRetryAfter: true}
}

// constRand returns a Rand that always yields v.
func constRand(v float64) func() float64 { return func() float64 { return v } }

func TestScheduleRetryAfterExact(t *testing.T) {
	clk := retrytest.NewClock(start)
	p := retry.Policy{Clock: clk, Rand: constRand(0.999), RetryAfterJitter: -1}
	for _, ra := range []time.Duration{time.Second, 3 * time.Second, 90 * time.Second, 17*time.Second + 300*time.Millisecond} {
		s := p.NewSchedule()
		got, err := s.Next(throttle(ra))
		if err != nil || got != ra {
			t.Errorf("Retry-After %v: wait %v, %v; want exactly %v", ra, got, err, ra)
		}
	}
	// Below the floor (0 s, 200 ms) the floor (1 s by default) applies.
	for _, ra := range []time.Duration{0, 200 * time.Millisecond} {
		if got, _ := p.NewSchedule().Next(throttle(ra)); got != time.Second {
			t.Errorf("Retry-After %v: wait %v, want floor 1s", ra, got)
		}
	}
	p.RetryAfterFloor = 3 * time.Second
	if got, _ := p.NewSchedule().Next(throttle(time.Second)); got != 3*time.Second {
		t.Errorf("custom floor: wait %v, want 3s", got)
	}
}

func TestScheduleRetryAfterJitterOnlyUpward(t *testing.T) {
	p := retry.Policy{Clock: retrytest.NewClock(start), Rand: retrytest.Rand(1)} // default jitter 1 s
	ra := 4 * time.Second
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for range 1000 {
		got, err := p.NewSchedule().Next(throttle(ra))
		if err != nil {
			t.Fatal(err)
		}
		if got < ra || got > ra+retry.DefaultRetryAfterJitter {
			t.Fatalf("wait %v outside [%v, %v]", got, ra, ra+retry.DefaultRetryAfterJitter)
		}
		lo, hi = min(lo, got), max(hi, got)
	}
	if hi-lo < 500*time.Millisecond {
		t.Fatalf("jitter barely spreads: [%v, %v]", lo, hi)
	}
}

func TestScheduleBackoffGrowthAndCap(t *testing.T) {
	// With Rand pinned at its top the wait is the ceiling of each step.
	p := retry.Policy{Clock: retrytest.NewClock(start), Rand: constRand(0.9999999999)}
	s := p.NewSchedule()
	want := []time.Duration{10, 20, 40, 80, 160, 300, 300, 300}
	for i, w := range want {
		got, err := s.Next(err503)
		if err != nil {
			t.Fatal(err)
		}
		if d := w*time.Second - got; d < 0 || d > time.Millisecond {
			t.Errorf("step %d: wait %v, want ceiling %v", i+1, got, w*time.Second)
		}
	}
	// With Rand at 0 every wait is the 5 s floor: never below it.
	s = retry.Policy{Clock: retrytest.NewClock(start), Rand: constRand(0)}.NewSchedule()
	for i := range 20 {
		if got, _ := s.Next(err503); got != 5*time.Second {
			t.Fatalf("step %d: wait %v, want 5s floor", i+1, got)
		}
	}
	// Reset brings the ceiling back to its first step.
	s = p.NewSchedule()
	for range 5 {
		s.Next(err503)
	}
	s.Reset()
	if got, _ := s.Next(err503); got > 10*time.Second {
		t.Fatalf("after Reset: wait %v, want ≤ 10s", got)
	}
}

func TestScheduleBackoffJitterBounds(t *testing.T) {
	p := retry.Policy{Clock: retrytest.NewClock(start), Rand: retrytest.Rand(7), MaxBackoff: time.Minute}
	for step := 1; step <= 8; step++ {
		ceil := min(time.Minute, 5*time.Second<<step)
		distinct := map[time.Duration]bool{}
		for range 500 {
			s := p.NewSchedule()
			var got time.Duration
			for range step {
				got, _ = s.Next(err503)
			}
			if got < 5*time.Second || got > ceil {
				t.Fatalf("step %d: wait %v outside [5s, %v]", step, got, ceil)
			}
			distinct[got] = true
		}
		if len(distinct) < 400 {
			t.Fatalf("step %d: only %d distinct waits in 500 draws", step, len(distinct))
		}
	}
}

// TestFleetSpreadsOut simulates 2,000 devices hit by the same 5xx at the
// same instant: their first retries must not come back in lock-step.
func TestFleetSpreadsOut(t *testing.T) {
	rnd := retrytest.Rand(2024)
	const fleet = 2000
	buckets := make([]int, 5) // one per second of the [5s, 10s) window
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for range fleet {
		s := retry.Policy{Clock: retrytest.NewClock(start), Rand: rnd}.NewSchedule()
		w, err := s.Next(err503)
		if err != nil {
			t.Fatal(err)
		}
		lo, hi = min(lo, w), max(hi, w)
		buckets[min(int((w-5*time.Second)/time.Second), 4)]++
	}
	if lo < 5*time.Second {
		t.Fatalf("a device retried after %v (< 5s)", lo)
	}
	if hi-lo < 4*time.Second {
		t.Fatalf("first retries span only %v", hi-lo)
	}
	for i, n := range buckets {
		// A uniform spread puts ~400 in each second; 250 allows for chance.
		if n < 250 {
			t.Fatalf("second %d after the floor has only %d of %d retries: %v", i, n, fleet, buckets)
		}
	}
}

func TestSchedulePermanentStops(t *testing.T) {
	for _, err := range []error{err401, &retry.StatusError{Code: 400}, &retry.StatusError{Code: 404}, errors.New("bad json")} {
		s := retry.Policy{Clock: retrytest.NewClock(start)}.NewSchedule()
		w, got := s.Next(err)
		if w != 0 || got != err {
			t.Errorf("Next(%v) = %v, %v; want 0, the error itself", err, w, got)
		}
	}
}

func TestScheduleGiveUp(t *testing.T) {
	clk := retrytest.NewClock(start)
	p := retry.Policy{Clock: clk, Rand: constRand(0), GiveUpAfter: 15 * time.Minute}
	s := p.NewSchedule()
	clk.Advance(14*time.Minute + 54*time.Second)
	if w, err := s.Next(err503); err != nil || w != 5*time.Second {
		t.Fatalf("at 14m54s: %v, %v; want a 5s wait", w, err)
	}
	clk.Advance(2 * time.Second) // 14m56s: a 5 s wait would end after 15m
	_, err := s.Next(err503)
	var gu *retry.GiveUpError
	if !errors.As(err, &gu) || !errors.Is(err, retry.ErrGaveUp) || !errors.Is(err, err503) {
		t.Fatalf("want *GiveUpError wrapping the 503, got %v", err)
	}
	if gu.Attempts != 2 || gu.Elapsed != 14*time.Minute+56*time.Second {
		t.Fatalf("GiveUpError = %+v", gu)
	}
	// A Retry-After that ends past the budget also gives up (never earlier).
	s = p.NewSchedule()
	if _, err := s.Next(throttle(16 * time.Minute)); !errors.Is(err, retry.ErrGaveUp) {
		t.Fatalf("long Retry-After: %v", err)
	}

	s = retry.Policy{Clock: clk, MaxAttempts: 3}.NewSchedule()
	for i := 1; i <= 3; i++ {
		_, err := s.Next(err503)
		if (err != nil) != (i == 3) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if got, want := fmt.Sprint(err), "retry: gave up after 2 attempts in 14m56s: status 503 Service Unavailable"; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
}

func TestScheduleExtremeValuesDoNotOverflow(t *testing.T) {
	const maxDur = time.Duration(1<<63 - 1)
	p := retry.Policy{Clock: retrytest.NewClock(start), Rand: constRand(0.9999999999), MaxBackoff: maxDur, GiveUpAfter: time.Hour}
	s := p.NewSchedule()
	for i := range 80 {
		w, err := s.Next(err503)
		if err != nil {
			break // the hour ran out: fine
		}
		if w < 5*time.Second {
			t.Fatalf("step %d: wait %v", i, w)
		}
	}
	w, err := retry.Policy{Clock: retrytest.NewClock(start), Rand: constRand(0.5)}.NewSchedule().Next(throttle(maxDur))
	if err != nil || w != maxDur {
		t.Fatalf("huge Retry-After: %v, %v; want saturation at %v", w, err, maxDur)
	}
	if _, err := (retry.Policy{Clock: retrytest.NewClock(start), GiveUpAfter: time.Hour}).NewSchedule().Next(throttle(maxDur)); !errors.Is(err, retry.ErrGaveUp) {
		t.Fatalf("huge Retry-After with a budget: %v", err)
	}
}
