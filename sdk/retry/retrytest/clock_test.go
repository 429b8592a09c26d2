package retrytest

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestClockFiresInOrder(t *testing.T) {
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewClock(start)
	late := c.NewTimer(3 * time.Second)
	early := c.NewTimer(time.Second)
	stopped := c.NewTimer(2 * time.Second)
	if !stopped.Stop() {
		t.Fatal("Stop of a pending timer returned false")
	}
	if stopped.Stop() {
		t.Fatal("second Stop returned true")
	}
	if got := c.Pending(); len(got) != 2 || got[0] != time.Second || got[1] != 3*time.Second {
		t.Fatalf("Pending = %v", got)
	}
	c.Advance(time.Second - 1)
	select {
	case <-early.C():
		t.Fatal("fired early")
	default:
	}
	c.Advance(1)
	if at := <-early.C(); !at.Equal(start.Add(time.Second)) {
		t.Fatalf("fired at %v", at)
	}
	left, err := c.WaitTimer(context.Background())
	if err != nil || left != 2*time.Second {
		t.Fatalf("WaitTimer = %v, %v", left, err)
	}
	c.Advance(time.Hour)
	<-late.C()
	if !c.Now().Equal(start.Add(time.Hour + time.Second)) {
		t.Fatalf("Now = %v", c.Now())
	}
	if now := <-c.NewTimer(0).C(); !now.Equal(c.Now()) {
		t.Fatalf("zero timer fired at %v", now)
	}
}

func TestWaitTimerBlocksUntilCreated(t *testing.T) {
	c := NewClock(time.Unix(0, 0))
	done := make(chan time.Duration)
	go func() {
		d, _ := c.WaitTimer(context.Background())
		done <- d
	}()
	c.NewTimer(7 * time.Second)
	if d := <-done; d != 7*time.Second {
		t.Fatalf("WaitTimer = %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c2 := NewClock(time.Unix(0, 0))
	if _, err := c2.WaitTimer(ctx); err != context.Canceled {
		t.Fatalf("WaitTimer on cancelled ctx = %v", err)
	}
}

func TestRandDeterministic(t *testing.T) {
	a, b := Rand(42), Rand(42)
	for range 100 {
		x, y := a(), b()
		if x != y || x < 0 || x >= 1 {
			t.Fatalf("Rand: %v vs %v", x, y)
		}
	}
}
