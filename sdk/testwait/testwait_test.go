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
