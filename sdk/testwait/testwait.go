// Package testwait is the one way tests in this module wait for something to
// become true: a condition polled with a growing interval until a deadline,
// failing the test with what was awaited and the last observation when the
// deadline passes. It replaces hand-written polling loops, so every wait in
// the suite is bounded and explains itself when it times out. For and True
// fail the test; Wait returns the same failure as an error, for a wait that
// must clean up first or that runs off the test's goroutine.
//
// The package's guard test (TestNoHandWrittenPolling) parses the module's
// test files and fails naming file:line for a loop that sleeps and checks a
// deadline itself, or that only sleeps until a condition holds.
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
	if err := Wait(timeout, what, cond); err != nil {
		t.Fatalf("%v", err)
	}
}

// Wait is For returning the failure as a *TimeoutError instead of failing a
// test: for a wait that must clean up before the test fails (kill the
// process it watched, stop what it started) and for a goroutine other than
// the test's own, which must not call t.Fatalf.
func Wait(timeout time.Duration, what string, cond func() (bool, string)) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	last, err := Until(ctx, cond)
	if err != nil {
		return &TimeoutError{Timeout: timeout, What: what, Last: last}
	}
	return nil
}

// TimeoutError is Wait's failure: what was awaited, for how long, and the
// condition's last description of what it saw ("" when it gave none).
type TimeoutError struct {
	Timeout time.Duration
	What    string
	Last    string
}

func (e *TimeoutError) Error() string {
	if e.Last != "" {
		return fmt.Sprintf("timed out after %v waiting for %s (last seen: %s)", e.Timeout, e.What, e.Last)
	}
	return fmt.Sprintf("timed out after %v waiting for %s", e.Timeout, e.What)
}

// Unwrap makes errors.Is(err, context.DeadlineExceeded) hold.
func (e *TimeoutError) Unwrap() error { return context.DeadlineExceeded }

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
