package hub

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// HubStats is what hubsim's admin API lists per hub (GET /hubsim/hubs).
type HubStats struct {
	HostName      string     `json:"hostName"`
	Devices       int        `json:"devices"`
	Connected     int        `json:"connected"`
	DroppedEvents int        `json:"droppedEvents"`
	EventTaps     []TapStats `json:"eventTaps"`
	Counters      Counters   `json:"counters"`
}

// Stats counts the hub's devices, connections and event taps.
func (h *Hub) Stats() HubStats {
	st := HubStats{HostName: h.host, DroppedEvents: h.DroppedEvents(), EventTaps: h.Taps(), Counters: h.Counters()}
	h.mu.Lock()
	st.Devices = len(h.devices)
	for _, d := range h.devices {
		if d.sess != nil {
			st.Connected++
		}
	}
	h.mu.Unlock()
	return st
}

// WriteError answers an HTTP request with err (from the hub's Go API) in
// Azure's hub error shape, with the status Azure would send.
func (s *Set) WriteError(w http.ResponseWriter, err error) {
	writeRESTError(w, restCode(err), err.Error(), s.now())
}

// The admin event tap's buffer: events waiting for a slow reader before
// hubsim drops them for it. By pointer, so the default costs 512 KiB of
// channel, plus the events while they wait.
const (
	DefaultTapBuffer = 1 << 16
	MaxTapBuffer     = 1 << 20
	// tapBatch bounds the events written between two flushes, so a reader
	// sees events within about one batch even when they never stop coming.
	tapBatch = 1024
	// tapWriteBufferSize buffers encoded events between flushes.
	tapWriteBufferSize = 64 << 10
	// tapWriteTimeout: a stalled reader must not hold the handler forever.
	tapWriteTimeout = 30 * time.Second

	// Response headers of the event tap: the subscriber id (as listed in
	// GET /hubsim/hubs) and the buffer it got.
	headerTapID     = "Hubsim-Tap-Id"
	headerTapBuffer = "Hubsim-Tap-Buffer"
)

// TapDropped is the line the admin event tap writes when events were
// dropped for its reader: {"dropped":N}, N counting every event this stream
// has missed so far. A reader tells it from an Event by the missing deviceId.
type TapDropped struct {
	Dropped int64 `json:"dropped"`
}

// ServeEvents streams telemetry as newline-delimited JSON until the client
// goes away or the hub closes (the admin API's event tap; query parameter
// buffer=n, default DefaultTapBuffer, at most MaxTapBuffer). The event tap
// never slows devices down: a reader more than buffer events behind misses
// events, and is told so in the stream by a {"dropped":N} line (TapDropped)
// after the batch in which its count grew, and once more when the hub
// closes the stream. The response header Hubsim-Tap-Id names the stream's
// entry in Stats().EventTaps. Events are written in batches: the handler
// flushes when no event is waiting, or after tapBatch events. Whenever this
// stream's drop count has grown, a TapDropped line follows the batch; a
// final one, even {"dropped":0}, is written when the hub closes the stream.
func (h *Hub) ServeEvents(w http.ResponseWriter, r *http.Request) {
	buf := DefaultTapBuffer
	if v := r.URL.Query().Get("buffer"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxTapBuffer {
			writeRESTError(w, errArgumentInvalid, "buffer must be 1.."+strconv.Itoa(MaxTapBuffer), h.now())
			return
		}
		buf = n
	}
	sub := h.subscribePtr(buf)
	defer h.taps.remove(sub)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set(headerTapID, strconv.Itoa(sub.id))
	w.Header().Set(headerTapBuffer, strconv.Itoa(buf))
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	bw := bufio.NewWriterSize(w, tapWriteBufferSize)
	enc := json.NewEncoder(bw)
	var reported int64
	// flush reports new drops and pushes what is buffered to the reader.
	flush := func(final bool) error {
		if d := sub.dropped.Load(); d != reported || final {
			reported = d
			if err := enc.Encode(TapDropped{Dropped: d}); err != nil {
				return err
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		return nil
	}
	done := r.Context().Done()
	for {
		var ev *Event
		var ok bool
		select {
		case <-done:
			return
		case ev, ok = <-sub.pch:
		}
		_ = rc.SetWriteDeadline(time.Now().Add(tapWriteTimeout))
		for n := 0; ok; n++ {
			if err := enc.Encode(ev); err != nil {
				return
			}
			if n+1 == tapBatch {
				break
			}
			select {
			case ev, ok = <-sub.pch:
				continue
			default:
			}
			break
		}
		if err := flush(!ok); err != nil || !ok {
			return // !ok: the hub closed; flush wrote the final drop count
		}
	}
}
