package testwait

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeTB struct{ msg string }

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}

func TestForReturnsOnceTrue(t *testing.T) {
	var n atomic.Int32
	tb := &fakeTB{}
	For(tb, time.Second, "three calls", func() (bool, string) { return n.Add(1) >= 3, "" })
	if tb.msg != "" || n.Load() != 3 {
		t.Fatalf("calls=%d failure=%q", n.Load(), tb.msg)
	}
}

func TestForReportsWhatAndLastSeen(t *testing.T) {
	tb := &fakeTB{}
	For(tb, 20*time.Millisecond, "the door to open", func() (bool, string) { return false, "closed" })
	for _, want := range []string{"timed out after 20ms", "the door to open", "last seen: closed"} {
		if !strings.Contains(tb.msg, want) {
			t.Errorf("failure %q lacks %q", tb.msg, want)
		}
	}
}

func TestUntilStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Until(ctx, func() (bool, string) { return false, "" })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestWait(t *testing.T) {
	tests := []struct {
		name    string
		cond    func() (bool, string)
		wantErr string // "" for success
	}{
		{"holds at once", func() (bool, string) { return true, "ignored" }, ""},
		{"never holds, with a description", func() (bool, string) { return false, "3 of 5" },
			"timed out after 20ms waiting for five things (last seen: 3 of 5)"},
		{"never holds, without a description", func() (bool, string) { return false, "" },
			"timed out after 20ms waiting for five things"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Wait(20*time.Millisecond, "five things", tt.cond)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			var te *TimeoutError
			if !errors.As(err, &te) || err.Error() != tt.wantErr || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %#v (%v), want %q wrapping context.DeadlineExceeded", err, err, tt.wantErr)
			}
		})
	}
}

// Wait may run on a goroutine that is not the test's: it reports instead of
// failing.
func TestWaitFromAnotherGoroutine(t *testing.T) {
	var ready atomic.Bool
	errc := make(chan error, 1)
	go func() { errc <- Wait(Default, "ready", func() (bool, string) { return ready.Load(), "not yet" }) }()
	ready.Store(true)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestForWithoutDescription(t *testing.T) {
	tb := &fakeTB{}
	True(tb, 10*time.Millisecond, "the light", func() bool { return false })
	if want := "timed out after 10ms waiting for the light"; tb.msg != want {
		t.Fatalf("failure %q, want %q", tb.msg, want)
	}
}
