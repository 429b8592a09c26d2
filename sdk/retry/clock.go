package retry

import "time"

// Clock is the time source a Policy uses; tests inject a fake one (see
// package retrytest).
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer that Do needs.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did so.
	Stop() bool
}

// RealClock returns the Clock backed by package time.
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// timerAdapter lets backoff's retry loop use our Clock.
type timerAdapter struct {
	clock Clock
	t     Timer // the current timer; owned by the single Do call
}

func (a *timerAdapter) Start(d time.Duration) {
	if a.t != nil {
		a.t.Stop()
	}
	a.t = a.clock.NewTimer(d)
}

func (a *timerAdapter) Stop() {
	if a.t != nil {
		a.t.Stop()
	}
}

func (a *timerAdapter) C() <-chan time.Time { return a.t.C() }
