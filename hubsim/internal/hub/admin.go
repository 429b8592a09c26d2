package hub

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// AdminHandler serves hubsim's own API for its hubs (no Azure counterpart,
// no authentication — hubsim listens on addresses the test owns):
//
//	GET  /hubsim/hubs                                  → [{"hostName":…,"devices":n,"connected":n}]
//	GET  /hubsim/hubs/<host>/events                    → newline-delimited JSON Events, streamed until the client goes away
//	POST /hubsim/hubs/<host>/devices/<id>/messages     → queue a C2D message (body = message body,
//	                                                     query parameters = application properties)
//	POST /hubsim/hubs/<host>/devices/<id>/disconnect   → drop the device's connection
//	GET  /hubsim/unhandled                             → what clients sent that hubsim does not serve
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
			HostName  string `json:"hostName"`
			Devices   int    `json:"devices"`
			Connected int    `json:"connected"`
		}
		var out []hubInfo
		for _, h := range s.hubs {
			h.mu.Lock()
			hi := hubInfo{HostName: h.host, Devices: len(h.devices)}
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

// serveEvents streams telemetry as newline-delimited JSON until the client
// goes away or the hub closes.
func (h *Hub) serveEvents(w http.ResponseWriter, r *http.Request) {
	events, cancel := h.Subscribe(256)
	defer cancel()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			// A stalled reader must not hold the handler forever.
			_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if err := enc.Encode(ev); err != nil {
				return
			}
			if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return
			}
		}
	}
}
