package hub

import (
	"slices"
	"sync"
	"sync/atomic"
)

// The telemetry tap. Devices publish concurrently, so the tap is built to
// cost them as little as possible: a hub with no subscriber pays one atomic
// load per message; with subscribers, publishers share a read lock (taps.mu)
// and never wait for each other or for a reader. A subscriber's channel is
// closed only under the write lock, so no send can race with the close.

// taps is a hub's set of event subscribers.
type taps struct {
	n       atomic.Int32 // len(list), read without mu on the publish fast path
	dropped atomic.Int64 // every event any subscriber missed, past and present
	mu      sync.RWMutex // publishers hold it for reading while they send
	list    []*tapSub    // guarded by mu
	seq     int          // guarded by mu
	closed  bool         // guarded by mu; the hub closed: no new subscribers
}

// tapSub is one subscriber. Exactly one of ch and pch is set: ch for
// Subscribe (events by value), pch for the admin HTTP tap (by pointer, so
// a deep buffer costs 8 bytes a slot until it fills).
type tapSub struct {
	id      int
	buf     int
	ch      chan Event
	pch     chan *Event
	dropped atomic.Int64
}

func (t *tapSub) queued() int {
	if t.ch != nil {
		return len(t.ch)
	}
	return len(t.pch)
}

func (t *tapSub) close() {
	if t.ch != nil {
		close(t.ch)
	} else {
		close(t.pch)
	}
}

// TapStats describes one event subscriber (see Hub.Taps).
type TapStats struct {
	ID      int   `json:"id"`      // per hub, in order of subscription
	Buffer  int   `json:"buffer"`  // channel capacity
	Queued  int   `json:"queued"`  // events waiting in the channel now
	Dropped int64 `json:"dropped"` // events missed because the channel was full
}

// Subscribe taps the telemetry the hub receives. Events are delivered in
// arrival order on a channel with room for buf events (minimum 1); when the
// subscriber falls behind, new events are dropped for it (counted by
// DroppedEvents and Taps) rather than blocking devices. cancel stops delivery
// and closes the channel; Set.Close closes it too.
func (h *Hub) Subscribe(buf int) (events <-chan Event, cancel func()) {
	buf = max(buf, 1)
	sub := &tapSub{buf: buf, ch: make(chan Event, buf)}
	h.taps.add(sub)
	return sub.ch, func() { h.taps.remove(sub) }
}

// subscribePtr is Subscribe for the admin tap: events by pointer, shared
// with other subscribers and not to be modified.
func (h *Hub) subscribePtr(buf int) *tapSub {
	buf = max(buf, 1)
	sub := &tapSub{buf: buf, pch: make(chan *Event, buf)}
	h.taps.add(sub)
	return sub
}

// DroppedEvents reports how many events slow subscribers missed, summed
// over every subscriber the hub has had.
func (h *Hub) DroppedEvents() int {
	return int(h.taps.dropped.Load())
}

// Taps describes the current event subscribers, oldest first.
func (h *Hub) Taps() []TapStats {
	h.taps.mu.RLock()
	defer h.taps.mu.RUnlock()
	out := make([]TapStats, 0, len(h.taps.list))
	for _, s := range h.taps.list {
		out = append(out, TapStats{ID: s.id, Buffer: s.buf, Queued: s.queued(), Dropped: s.dropped.Load()})
	}
	return out
}

func (t *taps) add(sub *tapSub) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	sub.id = t.seq
	if t.closed {
		sub.close()
		return
	}
	t.list = append(t.list, sub)
	t.n.Store(int32(len(t.list)))
}

func (t *taps) remove(sub *tapSub) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := slices.Index(t.list, sub)
	if i < 0 {
		return // already removed, or the hub closed it
	}
	t.list = slices.Delete(t.list, i, i+1)
	t.n.Store(int32(len(t.list)))
	sub.close()
}

// closeAll closes every subscriber's channel and refuses new ones.
func (t *taps) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for _, s := range t.list {
		s.close()
	}
	t.list = nil
	t.n.Store(0)
}

// active reports whether anyone listens; a publisher may skip building the
// event when not. A subscriber that arrives just after misses the event, as
// it would had it subscribed a moment later.
func (t *taps) active() bool { return t.n.Load() > 0 }

func (t *taps) publish(ev *Event) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, s := range t.list {
		var ok bool
		if s.pch != nil {
			select {
			case s.pch <- ev:
				ok = true
			default:
			}
		} else {
			select {
			case s.ch <- *ev:
				ok = true
			default:
			}
		}
		if !ok {
			s.dropped.Add(1)
			t.dropped.Add(1)
		}
	}
}
