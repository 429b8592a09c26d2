package iothub

import (
	"context"
	"sync"
)

// queue runs functions one at a time, in the order they were pushed, on one
// goroutine (run), so that a slow handler never blocks the MQTT client's
// message router. It is unbounded: the hub bounds what it sends (50 queued
// C2D messages per device, one desired patch per change).
type queue struct {
	mu     sync.Mutex
	items  []func() // guarded by mu
	signal chan struct{}
}

func newQueue() *queue { return &queue{signal: make(chan struct{}, 1)} }

func (q *queue) push(f func()) {
	q.mu.Lock()
	q.items = append(q.items, f)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// run executes pushed functions until ctx ends; what is still queued then
// is dropped.
func (q *queue) run(ctx context.Context) {
	for {
		q.mu.Lock()
		items := q.items
		q.items = nil
		q.mu.Unlock()
		for i, f := range items {
			if ctx.Err() != nil {
				return
			}
			f()
			items[i] = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-q.signal:
		}
	}
}
