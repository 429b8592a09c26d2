package retry_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/retry/retrytest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// call is one invocation of the operation, seen from the fake clock.
type call struct{ at time.Time }

// runDo starts retry.Do in a goroutine with op answering errs[i] on the
// i-th call (nil afterwards) and returns channels for calls and the result.
func runDo(ctx context.Context, p retry.Policy, errs ...error) (<-chan call, <-chan error) {
	calls := make(chan call, len(errs)+1)
	done := make(chan error, 1)
	var n atomic.Int32
	go func() {
		done <- retry.Do(ctx, p, func(context.Context) error {
			i := int(n.Add(1)) - 1
			calls <- call{at: p.Clock.Now()}
			if i < len(errs) {
				return errs[i]
			}
			return nil
		})
	}()
	return calls, done
}

func waitTimer(t *testing.T, clk *retrytest.Clock) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := clk.WaitTimer(ctx)
	if err != nil {
		t.Fatalf("no timer started: %v", err)
	}
	return d
}

func TestDoHonoursRetryAfterExactly(t *testing.T) {
	dateForm := start.Add(42 * time.Second).Format(http.TimeFormat)
	for _, hdr := range []string{"7", dateForm} {
		t.Run(hdr, func(t *testing.T) {
			clk := retrytest.NewClock(start)
			ra, ok := retry.ParseRetryAfter(hdr, clk.Now())
			if !ok {
				t.Fatalf("ParseRetryAfter(%q) failed", hdr)
			}
			p := retry.Policy{Clock: clk, Rand: retrytest.Rand(3), RetryAfterJitter: -1}
			calls, done := runDo(context.Background(), p, throttle(ra))
			first := <-calls
			if d := waitTimer(t, clk); d != ra {
				t.Fatalf("waits %v, want exactly %v", d, ra)
			}
			clk.Advance(ra - time.Nanosecond)
			select {
			case <-calls:
				t.Fatal("retried before Retry-After elapsed")
			default:
			}
			if got := clk.Pending(); len(got) != 1 {
				t.Fatalf("timer should still be pending, have %v", got)
			}
			clk.Advance(time.Nanosecond)
			second := <-calls
			if got := second.at.Sub(first.at); got != ra {
				t.Fatalf("second call %v after the first, want %v", got, ra)
			}
			if err := <-done; err != nil {
				t.Fatalf("Do = %v", err)
			}
		})
	}
}

func TestDoBackoffSequence(t *testing.T) {
	clk := retrytest.NewClock(start)
	var notified []time.Duration
	p := retry.Policy{Clock: clk, Rand: retrytest.Rand(5), Notify: func(err error, d time.Duration) {
		notified = append(notified, d) // called from Do's goroutine only
	}}
	calls, done := runDo(context.Background(), p, err503, err503, err503, err503)
	<-calls
	var waits []time.Duration
	for i := range 4 {
		d := waitTimer(t, clk)
		ceil := 5 * time.Second << (i + 1)
		if d < 5*time.Second || d > ceil {
			t.Fatalf("wait %d = %v, want in [5s, %v]", i+1, d, ceil)
		}
		waits = append(waits, d)
		clk.Advance(d)
		<-calls
	}
	if err := <-done; err != nil {
		t.Fatalf("Do = %v", err)
	}
	if fmt.Sprint(notified) != fmt.Sprint(waits) {
		t.Fatalf("Notify saw %v, timers %v", notified, waits)
	}
	if !clk.Now().Equal(start.Add(waits[0] + waits[1] + waits[2] + waits[3])) {
		t.Fatalf("clock at %v", clk.Now())
	}
}

func TestDoPermanentNoRetry(t *testing.T) {
	inner := errors.New("bad request body")
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"400", &retry.StatusError{Code: 400}, nil},
		{"401", err401, nil},
		{"404", &retry.StatusError{Code: 404}, nil},
		{"backoff.Permanent unwrapped", backoff.Permanent(inner), inner},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := retrytest.NewClock(start)
			calls, done := runDo(context.Background(), retry.Policy{Clock: clk}, tc.err, tc.err)
			<-calls
			err := <-done
			want := tc.want
			if want == nil {
				want = tc.err
			}
			if err != want {
				t.Fatalf("Do = %v, want %v", err, want)
			}
			if len(calls) != 0 || len(clk.Pending()) != 0 {
				t.Fatal("retried a permanent error")
			}
		})
	}
}

func TestDoCancelDuringWait(t *testing.T) {
	clk := retrytest.NewClock(start)
	ctx, cancel := context.WithCancel(context.Background())
	calls, done := runDo(ctx, retry.Policy{Clock: clk}, err503, err503)
	<-calls
	waitTimer(t, clk)
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Do = %v, want context.Canceled", err)
	}
	if len(calls) != 0 {
		t.Fatal("op called again after cancel")
	}
	if len(clk.Pending()) != 0 {
		t.Fatal("timer left running after Do returned")
	}
}

func TestDoContextErrors(t *testing.T) {
	clk := retrytest.NewClock(start)
	// Already cancelled: op never runs.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	if err := retry.Do(ctx, retry.Policy{Clock: clk}, func(context.Context) error { ran = true; return nil }); err != context.Canceled || ran {
		t.Fatalf("Do on cancelled ctx = %v, ran=%v", err, ran)
	}

	// Cancelled while op runs, op returns the context's error: as-is.
	ctx, cancel = context.WithCancel(context.Background())
	err := retry.Do(ctx, retry.Policy{Clock: clk}, func(ctx context.Context) error {
		cancel()
		return fmt.Errorf("publish: %w", ctx.Err())
	})
	if !errors.Is(err, context.Canceled) || err.Error() != "publish: context canceled" {
		t.Fatalf("Do = %v", err)
	}

	// Cancelled while op runs, op returns something else: both visible.
	ctx, cancel = context.WithCancel(context.Background())
	err = retry.Do(ctx, retry.Policy{Clock: clk}, func(context.Context) error {
		cancel()
		return err503
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, err503) {
		t.Fatalf("Do = %v, want Canceled and the 503", err)
	}
}

func TestDoPerAttemptTimeoutIsRetried(t *testing.T) {
	clk := retrytest.NewClock(start)
	calls, done := runDo(context.Background(), retry.Policy{Clock: clk}, fmt.Errorf("connack: %w", context.DeadlineExceeded))
	<-calls
	clk.Advance(waitTimer(t, clk))
	<-calls
	if err := <-done; err != nil {
		t.Fatalf("Do = %v", err)
	}
}

func TestDoGiveUp(t *testing.T) {
	clk := retrytest.NewClock(start)
	p := retry.Policy{Clock: clk, Rand: retrytest.Rand(9), GiveUpAfter: time.Minute}
	errs := make([]error, 100)
	for i := range errs {
		errs[i] = err503
	}
	calls, done := runDo(context.Background(), p, errs...)
	<-calls
	for {
		select {
		case err := <-done:
			if !errors.Is(err, retry.ErrGaveUp) || !errors.Is(err, err503) {
				t.Fatalf("Do = %v", err)
			}
			if clk.Now().Sub(start) > time.Minute {
				t.Fatalf("kept going until %v", clk.Now().Sub(start))
			}
			return
		case <-calls:
		default:
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			d, err := clk.WaitTimer(ctx)
			cancel()
			if err == nil {
				clk.Advance(d)
			}
		}
	}
}
