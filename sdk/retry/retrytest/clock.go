// Package retrytest provides a fake retry.Clock so that code built on
// package retry can be tested without sleeping.
//
// Typical use: run the code under test in a goroutine, call WaitTimer to
// learn the wait it asked for, assert on it, then Advance the clock by that
// much to let it continue.
package retrytest

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/porthole-iot/porthole/sdk/retry"
)

// Clock is a manual clock. Its time moves only through Advance. Safe for
// concurrent use.
type Clock struct {
	mu      sync.Mutex
	now     time.Time     // guarded by mu
	timers  []*timer      // pending timers; guarded by mu
	changed chan struct{} // closed and replaced when timers change; guarded by mu
}

var _ retry.Clock = (*Clock)(nil)

// NewClock returns a clock reading start.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start, changed: make(chan struct{})}
}

// Now returns the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires when the clock has been advanced by d.
// A timer with d <= 0 fires at once.
func (c *Clock) NewTimer(d time.Duration) retry.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, ch: make(chan time.Time, 1), when: c.now.Add(d), d: d}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	c.signalLocked()
	return t
}

// Advance moves the clock forward by d and fires every timer that is due,
// in order of their deadlines.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].when.Before(c.timers[j].when) })
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.when.After(c.now) {
			t.ch <- t.when
			continue
		}
		kept = append(kept, t)
	}
	clear(c.timers[len(kept):])
	c.timers = kept
	c.signalLocked()
}

// Pending returns the durations (as requested at creation) of the timers
// not yet fired or stopped, earliest deadline first.
func (c *Clock) Pending() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := append([]*timer(nil), c.timers...)
	sort.SliceStable(ts, func(i, j int) bool { return ts[i].when.Before(ts[j].when) })
	out := make([]time.Duration, len(ts))
	for i, t := range ts {
		out[i] = t.d
	}
	return out
}

// Deadlines returns the times at which the pending timers fire, earliest
// first.
func (c *Clock) Deadlines() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Time, len(c.timers))
	for i, t := range c.timers {
		out[i] = t.when
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// WaitTimer blocks until at least one timer is pending and returns the time
// left until the earliest one fires. It returns ctx.Err() if ctx ends first.
func (c *Clock) WaitTimer(ctx context.Context) (time.Duration, error) {
	for {
		c.mu.Lock()
		if len(c.timers) > 0 {
			earliest := c.timers[0].when
			for _, t := range c.timers[1:] {
				if t.when.Before(earliest) {
					earliest = t.when
				}
			}
			left := earliest.Sub(c.now)
			c.mu.Unlock()
			return left, nil
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func (c *Clock) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

type timer struct {
	c    *Clock
	ch   chan time.Time // buffered 1; written once under c.mu
	when time.Time      // immutable
	d    time.Duration  // immutable
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			t.c.signalLocked()
			return true
		}
	}
	return false
}
