package hub

// Subscribe taps the telemetry the hub receives. Events are delivered in
// arrival order on a channel with room for buf events (minimum 1); when the
// subscriber falls behind, new events are dropped for it (counted by
// DroppedEvents) rather than blocking devices. cancel stops delivery and
// closes the channel; Set.Close closes it too.
func (h *Hub) Subscribe(buf int) (events <-chan Event, cancel func()) {
	if buf < 1 {
		buf = 1
	}
	ch := make(chan Event, buf)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		close(ch)
		return ch, func() {}
	}
	h.subSeq++
	n := h.subSeq
	h.subs[n] = ch
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if c, ok := h.subs[n]; ok {
			delete(h.subs, n)
			close(c)
		}
	}
}

// DroppedEvents reports how many events slow subscribers missed.
func (h *Hub) DroppedEvents() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dropped
}

func (h *Hub) publishEvent(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ch := range h.subs {
		select {
		case ch <- ev:
		default:
			h.dropped++
		}
	}
}
