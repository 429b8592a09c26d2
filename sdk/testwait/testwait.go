// Package testwait is the one way tests in this module wait for something to
// become true: a condition polled with a growing interval until a deadline,
// failing the test with what was awaited and the last observation when the
// deadline passes. It replaces hand-written polling loops, so every wait in
// the suite is bounded and explains itself when it times out.
//
// It is an ordinary package (like net/http/httptest) so that tests in agent/,
// sdk/ and hubsim/ can share it; nothing outside tests should import it.
package testwait

import (
	"context"
	"fmt"
	"time"
)

// TB is the part of testing.TB that For needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Default is the deadline used by For when a test does not say otherwise. It
// is generous because CI machines are slow and shared; a wait that succeeds
// returns as soon as the condition holds.
const Default = 20 * time.Second

// For polls cond until it returns true or timeout passes, then fails t with
// "timed out after <timeout> waiting for <what>". cond may return a
// description of what it saw, which is added to the failure message.
func For(t TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if last, err := Until(ctx, cond); err != nil {
		if last != "" {
			t.Fatalf("timed out after %v waiting for %s (last seen: %s)", timeout, what, last)
			return
		}
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// True is For with a plain boolean condition.
func True(t TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	For(t, timeout, what, func() (bool, string) { return cond(), "" })
}

// Until polls cond until it returns true or ctx ends. It returns the last
// description cond gave and ctx's error when ctx ended first. Polling starts at
// 1 ms and doubles up to 50 ms, so fast conditions are seen quickly and slow
// ones do not burn a core.
func Until(ctx context.Context, cond func() (bool, string)) (string, error) {
	interval := time.Millisecond
	var last string
	for {
		ok, seen := cond()
		if ok {
			return seen, nil
		}
		last = seen
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return last, fmt.Errorf("testwait: %w", ctx.Err())
		case <-t.C:
		}
		if interval < 50*time.Millisecond {
			interval *= 2
		}
	}
}
