package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Defaults applied to zero fields of a Policy.
const (
	// DefaultMinBackoff is the shortest wait after a 5xx or transport error:
	// "an exponential backoff with at least 5 seconds of wait-time"
	// (MicrosoftDocs/azure-docs articles/iot-dps/concepts-deploy-at-scale.md).
	DefaultMinBackoff = 5 * time.Second
	// DefaultMaxBackoff caps the exponential ceiling.
	DefaultMaxBackoff = 5 * time.Minute
	// DefaultMultiplier grows the ceiling per consecutive backoff.
	DefaultMultiplier = 2.0
	// DefaultRetryAfterFloor is the least wait after a 429, even when the
	// server says 0 (the same doc: "min_retry_delay_msec = 1000").
	DefaultRetryAfterFloor = time.Second
	// DefaultRetryAfterJitter is the largest random amount added on top of a
	// server-requested wait. It only ever delays: the server's time is a
	// lower bound.
	DefaultRetryAfterJitter = time.Second
)

// Policy says how to retry. The zero value is the Azure-recommended policy
// with no time limit; copy it and set fields to change it. A Policy is a
// value and is safe to share between goroutines as long as Rand is.
type Policy struct {
	// MinBackoff is the least wait after a transient failure (default 5 s).
	MinBackoff time.Duration
	// MaxBackoff caps the backoff ceiling (default 5 min).
	MaxBackoff time.Duration
	// Multiplier grows the ceiling: after the n-th consecutive transient
	// failure the wait is uniform in [MinBackoff, min(MaxBackoff,
	// MinBackoff*Multiplier^n)] ("full jitter" above a floor). Default 2,
	// so the first retry waits 5–10 s, the second 5–20 s, and so on.
	Multiplier float64

	// RetryAfterFloor is the least wait after a 429 (default 1 s).
	RetryAfterFloor time.Duration
	// RetryAfterJitter is the largest random delay added to a 429's wait
	// (default 1 s). Negative disables jitter: then the wait is exactly
	// max(Retry-After, RetryAfterFloor).
	RetryAfterJitter time.Duration

	// GiveUpAfter stops retrying once the next attempt would start more than
	// this long after the first one (0: never). The agent uses it for "retry
	// the cached hub for 15–30 minutes, then go back to DPS". Do then returns
	// a *GiveUpError (errors.Is(err, ErrGaveUp)).
	GiveUpAfter time.Duration
	// MaxAttempts stops after this many failed attempts (0: unlimited), with
	// a *GiveUpError.
	MaxAttempts int

	// Clock is the time source (nil: the real clock).
	Clock Clock
	// Rand returns uniform values in [0, 1) (nil: math/rand/v2's Float64).
	// Must be safe for concurrent use if the Policy is shared.
	Rand func() float64
	// Notify, if non-nil, is called before each wait with the failure and
	// the wait, e.g. to log it. It must not block.
	Notify func(err error, wait time.Duration)
}

// ErrGaveUp is matched (errors.Is) by the error Do returns when GiveUpAfter
// or MaxAttempts ran out.
var ErrGaveUp = errors.New("retry: gave up")

// GiveUpError reports that the retry budget ran out; it wraps the last
// failure.
type GiveUpError struct {
	Attempts int           // failed attempts made
	Elapsed  time.Duration // since the first attempt started
	Err      error         // the last failure
}

func (e *GiveUpError) Error() string {
	if e.Attempts <= 1 {
		// Giving up after the only attempt allowed says nothing the
		// failure does not.
		return e.Err.Error()
	}
	return fmt.Sprintf("retry: gave up after %d attempts in %s: %v", e.Attempts, e.Elapsed, e.Err)
}

// Unwrap returns the last failure.
func (e *GiveUpError) Unwrap() error { return e.Err }

// Is reports whether target is ErrGaveUp.
func (e *GiveUpError) Is(target error) bool { return target == ErrGaveUp }

func (p Policy) withDefaults() Policy {
	if p.MinBackoff <= 0 {
		p.MinBackoff = DefaultMinBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = DefaultMaxBackoff
	}
	if p.MaxBackoff < p.MinBackoff {
		p.MaxBackoff = p.MinBackoff
	}
	if !(p.Multiplier >= 1) { // also catches NaN
		p.Multiplier = DefaultMultiplier
	}
	if p.RetryAfterFloor <= 0 {
		p.RetryAfterFloor = DefaultRetryAfterFloor
	}
	switch {
	case p.RetryAfterJitter == 0:
		p.RetryAfterJitter = DefaultRetryAfterJitter
	case p.RetryAfterJitter < 0:
		p.RetryAfterJitter = 0
	}
	if p.Clock == nil {
		p.Clock = realClock{}
	}
	if p.Rand == nil {
		p.Rand = rand.Float64
	}
	return p
}

// Schedule is the stateful form of a Policy: feed it each failure and it
// says how long to wait, or that it is time to stop. Use it for loops that
// are not a single call (e.g. a reconnect loop); Do uses one internally.
// A Schedule is not safe for concurrent use.
type Schedule struct {
	p        Policy // with defaults
	start    time.Time
	attempts int // failed attempts so far
	backoffs int // consecutive Backoff decisions so far
}

// NewSchedule starts a schedule; the GiveUpAfter budget counts from now.
func (p Policy) NewSchedule() *Schedule {
	s := &Schedule{p: p.withDefaults()}
	s.start = s.p.Clock.Now()
	return s
}

// Reset starts over, e.g. after a connection has been healthy for a while:
// the budget counts from now and the backoff ceiling falls back to its
// first step.
func (s *Schedule) Reset() {
	s.start = s.p.Clock.Now()
	s.attempts = 0
	s.backoffs = 0
}

// Next classifies err with [Classify] and returns the wait before the next
// attempt, or a non-nil error when the caller must stop: err itself for
// permanent and context errors (unwrapped from backoff.Permanent), or a
// *GiveUpError when the budget is spent.
func (s *Schedule) Next(err error) (time.Duration, error) {
	return s.next(err, Classify(err))
}

func (s *Schedule) next(err error, d Decision) (time.Duration, error) {
	s.attempts++
	var wait time.Duration
	switch d.Kind {
	case After:
		wait = satAdd(max(d.Wait, s.p.RetryAfterFloor), s.jitter(s.p.RetryAfterJitter))
	case Backoff:
		s.backoffs++
		ceil := s.ceiling(s.backoffs)
		wait = s.p.MinBackoff + s.jitter(ceil-s.p.MinBackoff)
	default:
		var perm *backoff.PermanentError
		if errors.As(err, &perm) && err == error(perm) {
			return 0, perm.Err
		}
		return 0, err
	}
	elapsed := s.p.Clock.Now().Sub(s.start)
	if (s.p.MaxAttempts > 0 && s.attempts >= s.p.MaxAttempts) ||
		(s.p.GiveUpAfter > 0 && satAdd(elapsed, wait) > s.p.GiveUpAfter) {
		return 0, &GiveUpError{Attempts: s.attempts, Elapsed: elapsed, Err: err}
	}
	return wait, nil
}

// ceiling is min(MaxBackoff, MinBackoff*Multiplier^n), overflow-safe.
func (s *Schedule) ceiling(n int) time.Duration {
	c := float64(s.p.MinBackoff) * math.Pow(s.p.Multiplier, float64(n))
	if math.IsInf(c, 0) || math.IsNaN(c) || c >= float64(s.p.MaxBackoff) {
		return s.p.MaxBackoff
	}
	return time.Duration(c)
}

// jitter returns a uniform duration in [0, span].
func (s *Schedule) jitter(span time.Duration) time.Duration {
	if span <= 0 {
		return 0
	}
	r := s.p.Rand()
	if !(r >= 0) || r >= 1 { // guard against a misbehaving source
		r = 0
	}
	d := time.Duration(r * (float64(span) + 1))
	if d < 0 || d > span { // float rounding near the int64 limit
		d = span
	}
	return d
}

// satAdd adds two non-negative durations, saturating instead of wrapping.
func satAdd(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Do calls op until it succeeds, returns an error that must not be
// retried, the retry budget runs out, or ctx is done. op receives ctx.
//
// Returns: nil on success; a permanent error as op returned it (unwrapped
// from backoff.Permanent); a *GiveUpError wrapping the last failure; or,
// when ctx ends, ctx.Err() (while waiting) or op's error if it is already
// the context's error, otherwise ctx.Err() joined with op's last error.
//
// One refinement over Classify: a context.DeadlineExceeded from op while
// ctx itself is still live came from a per-attempt timeout that op set up,
// so it is retried with backoff.
func Do(ctx context.Context, p Policy, op func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := p.NewSchedule()
	var wait time.Duration
	attempt := func() error {
		err := op(ctx)
		if err == nil {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			if errors.Is(err, cerr) {
				return backoff.Permanent(err)
			}
			return backoff.Permanent(fmt.Errorf("%w (last error: %w)", cerr, err))
		}
		d := Classify(err)
		if d.Kind == Permanent && errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			d = Decision{Kind: Backoff}
		}
		w, final := s.next(err, d)
		if final != nil {
			return backoff.Permanent(final)
		}
		wait = w
		return err
	}
	var notify backoff.Notify
	if s.p.Notify != nil {
		notify = s.p.Notify
	}
	return backoff.RetryNotifyWithTimer(attempt,
		backoff.WithContext(fixedBackOff{&wait}, ctx),
		notify, &timerAdapter{clock: s.p.Clock})
}

// fixedBackOff hands backoff's retry loop the wait that Schedule computed
// for the failure just seen (the loop itself cannot see the error).
type fixedBackOff struct{ wait *time.Duration }

func (b fixedBackOff) NextBackOff() time.Duration { return *b.wait }
func (b fixedBackOff) Reset()                     {}
