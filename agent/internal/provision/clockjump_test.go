package provision

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/retry/retrytest"
)

// jumpClock is a fake clock whose wall time can jump (NTP setting the time
// of a board that booted in 1970, or stepping it back) while its timers,
// like the monotonic timers of a real clock, only move with Advance.
type jumpClock struct {
	*retrytest.Clock
	mu     sync.Mutex
	offset time.Duration // guarded by mu
}

func (c *jumpClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Clock.Now().Add(c.offset)
}

func (c *jumpClock) Jump(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

func withJumpClock(e *env) *jumpClock {
	jc := &jumpClock{Clock: e.clock}
	e.hubs.clock = jc
	return jc
}

var jumps = []struct {
	name string
	d    time.Duration
}{{"forward 2h", 2 * time.Hour}, {"backward 1h", -time.Hour}}

// The 15-minute cached-hub rule counts the waits and attempts, not the
// wall clock: a jump in any wait moves lookup neither earlier nor later.
func TestClockJumpCachedHubWindow(t *testing.T) {
	for _, j := range jumps {
		for _, at := range []int{1, 90, 179} { // the wait the jump happens in
			t.Run(fmt.Sprintf("%s in wait %d", j.name, at), func(t *testing.T) {
				e := newEnv(t)
				e.seed("hub-a.local")
				e.hubs.setFail("hub-a.local", errRefused)
				jc := withJumpClock(e)
				cfg := e.config()
				cfg.Retry.Clock = jc
				p, _ := New(cfg)
				m := p.NewMachine()
				m.Start()
				attempts := 0
				for s := StateConnect; s != StateLookup; {
					if s = m.Step(context.Background()); s == StateWait {
						attempts++
						if attempts == at {
							jc.Jump(j.d)
						}
						jc.Advance(m.Delay())
						m.WaitOver()
					} else if s != StateLookup {
						t.Fatalf("after %d attempts: %v", attempts, s)
					}
				}
				// Attempts at 0 s, 5 s, … 895 s fail and wait; the one at
				// 900 s goes to DPS: 180 waits, neither fewer nor more.
				if attempts != 180 {
					t.Fatalf("lookup after %d failed attempts, want 180 (15 min of 5 s waits)", attempts)
				}
			})
		}
	}
}

// A jump during a connection attempt counts at most maxAttemptTime
// towards the window (forward) and nothing (backward).
func TestClockJumpDuringAttempt(t *testing.T) {
	for _, j := range jumps {
		t.Run(j.name, func(t *testing.T) {
			e := newEnv(t)
			e.seed("hub-a.local")
			jc := withJumpClock(e)
			cfg := e.config()
			cfg.Retry.Clock = jc
			calls := 0
			cfg.Connect = func(ctx context.Context, a Assignment) (Session, error) {
				if calls++; calls == 2 { // the hub is failing by then
					jc.Jump(j.d)
				}
				return nil, errRefused
			}
			p, _ := New(cfg)
			m := p.NewMachine()
			m.Start()
			attempts := 0
			for m.Step(context.Background()) == StateWait {
				attempts++
				jc.Advance(m.Delay())
				m.WaitOver()
			}
			want := 180
			if j.d > 0 {
				want -= int(maxAttemptTime / (5 * time.Second))
			}
			if m.State() != StateLookup || attempts != want {
				t.Fatalf("%v after %d failed attempts, want lookup after %d", m.State(), attempts, want)
			}
		})
	}
}

// Retry-After and backoff waits are timers: a jump of the wall clock
// during the wait fires them neither early nor late, in the real driver.
func TestClockJumpRetryAfter(t *testing.T) {
	for _, j := range jumps {
		for _, tc := range []struct {
			name string
			err  error
			wait time.Duration
		}{
			{"429 Retry-After 11s", &retry.StatusError{Code: 429, RetryAfter: 11 * time.Second, HasRetryAfter: true}, 11 * time.Second},
			{"503 backoff", err503, 5 * time.Second},
		} {
			t.Run(j.name+" "+tc.name, func(t *testing.T) {
				e := newEnv(t)
				jc := withJumpClock(e)
				e.dps.register = func(n int) (Assignment, error) {
					if n == 1 {
						return Assignment{}, tc.err
					}
					return assigned("hub-a.local"), nil
				}
				cfg := e.config()
				cfg.Retry.Clock = jc
				p, _ := New(cfg)
				e.start(p)
				recv(t, e.dps.called, "first registration")
				d, err := jc.WaitTimer(context.Background())
				if err != nil || d != tc.wait {
					t.Fatalf("wait %v (%v), want %v", d, err, tc.wait)
				}
				jc.Jump(j.d)
				jc.Advance(tc.wait - time.Millisecond)
				select {
				case c := <-e.dps.called:
					t.Fatalf("%s before the wait was over", c)
				default:
				}
				if got := jc.Pending(); len(got) != 1 {
					t.Fatalf("pending timers %v, want the one wait", got)
				}
				jc.Advance(time.Millisecond)
				recv(t, e.dps.called, "second registration")
				recv(t, e.hubs.sessions, "session")
			})
		}
	}
}
