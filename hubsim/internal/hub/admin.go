package hub

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

// AdminHandler serves hubsim's own API for its hubs (no Azure counterpart,
// no authentication — hubsim listens on addresses the test owns):
//
//	GET  /hubsim/hubs                                  → [{"hostName":…,"devices":n,"connected":n,
//	                                                       "droppedEvents":n,"eventTaps":[{"id":…,"buffer":…,"queued":…,"dropped":…}]}]
//	GET  /hubsim/hubs/<host>/events[?buffer=n]         → newline-delimited JSON Events, streamed until the client goes away
//	POST /hubsim/hubs/<host>/devices/<id>/messages     → queue a C2D message (body = message body,
//	                                                     query parameters = application properties)
//	POST /hubsim/hubs/<host>/devices/<id>/disconnect   → drop the device's connection
//	GET  /hubsim/unhandled                             → what clients sent that hubsim does not serve
//
// The event tap never slows devices down: a reader more than buffer events
// behind (default DefaultTapBuffer, at most MaxTapBuffer) misses events, and
// is told so in the stream by a {"dropped":N} line (TapDropped) after the
// batch in which its count grew, and once more when the hub closes the
// stream. The response header Hubsim-Tap-Id names the stream's entry in
// eventTaps; droppedEvents counts the drops of every tap the hub has had.
func (s *Set) AdminHandler() http.Handler {
	return http.HandlerFunc(s.serveAdmin)
}

func (s *Set) serveAdmin(w http.ResponseWriter, r *http.Request) {
	segs, err := splitPath(r.URL.EscapedPath())
	if err != nil || len(segs) < 2 || segs[0] != "hubsim" {
		writeRESTError(w, errNotFound, "no such hubsim resource", s.now())
		return
	}
	switch {
	case len(segs) == 2 && segs[1] == "unhandled" && r.Method == http.MethodGet:
		writeAdminJSON(w, s.Unhandled())
		return
	case len(segs) == 2 && segs[1] == "hubs" && r.Method == http.MethodGet:
		type hubInfo struct {
			HostName      string     `json:"hostName"`
			Devices       int        `json:"devices"`
			Connected     int        `json:"connected"`
			DroppedEvents int        `json:"droppedEvents"`
			EventTaps     []TapStats `json:"eventTaps"`
		}
		var out []hubInfo
		for _, h := range s.hubs {
			hi := hubInfo{HostName: h.host, DroppedEvents: h.DroppedEvents(), EventTaps: h.Taps()}
			h.mu.Lock()
			hi.Devices = len(h.devices)
			for _, d := range h.devices {
				if d.sess != nil {
					hi.Connected++
				}
			}
			h.mu.Unlock()
			out = append(out, hi)
		}
		writeAdminJSON(w, out)
		return
	}
	if len(segs) < 4 || segs[1] != "hubs" {
		writeRESTError(w, errNotFound, "no such hubsim resource", s.now())
		return
	}
	h, ok := s.Hub(segs[2])
	if !ok {
		writeRESTError(w, errNotFound, "no hub "+segs[2], s.now())
		return
	}
	rest := segs[3:]
	switch {
	case len(rest) == 1 && rest[0] == "events" && r.Method == http.MethodGet:
		h.serveEvents(w, r)
	case len(rest) == 3 && rest[0] == "devices" && rest[2] == "messages" && r.Method == http.MethodPost:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeRESTError(w, errArgumentInvalid, "reading body", s.now())
			return
		}
		props := map[string]string{}
		for k, v := range r.URL.Query() {
			if len(v) > 0 {
				props[k] = v[0]
			}
		}
		msg := C2DMessage{Body: body, Properties: props, ContentType: r.Header.Get("Content-Type")}
		if err := h.SendC2D(r.Context(), rest[1], msg); err != nil {
			h.writeErr(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case len(rest) == 3 && rest[0] == "devices" && rest[2] == "disconnect" && r.Method == http.MethodPost:
		if !h.Disconnect(rest[1], "") {
			writeRESTError(w, errDeviceNotOnline, rest[1]+" is not connected", s.now())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		writeRESTError(w, errNotFound, "no such hubsim resource", s.now())
	}
}

func writeAdminJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", contentTypeJSON)
	_ = json.NewEncoder(w).Encode(v)
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

// serveEvents streams telemetry as newline-delimited JSON until the client
// goes away or the hub closes. Events are written in batches: the handler
// flushes when no event is waiting, or after tapBatch events. Whenever this
// stream's drop count has grown, a TapDropped line follows the batch; a
// final one, even {"dropped":0}, is written when the hub closes the stream.
func (h *Hub) serveEvents(w http.ResponseWriter, r *http.Request) {
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
