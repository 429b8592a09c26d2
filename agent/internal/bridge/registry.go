package bridge

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/sdk/stream"
	"github.com/porthole-iot/porthole/sdk/stream/mux"
)

// StreamInfo is one open stream as `porthole-agent status` shows it.
type StreamInfo struct {
	RequestID string    `json:"requestId,omitempty"`
	StreamID  string    `json:"streamId,omitempty"`
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`             // "plain" or "mux"
	Target    string    `json:"target,omitempty"` // plain streams
	Started   time.Time `json:"started"`
	// Bytes to and from the target (plain), or through the whole stream
	// (mux: yamux framing included).
	BytesToTarget   int64      `json:"bytesToTarget"`
	BytesFromTarget int64      `json:"bytesFromTarget"`
	Conns           []ConnInfo `json:"conns,omitempty"`
}

// ConnInfo is one connection inside a mux stream.
type ConnInfo struct {
	ID              uint32    `json:"id"`
	Kind            string    `json:"kind"`        // "target" or "dial"
	Destination     string    `json:"destination"` // target name, or host:port asked for
	Target          string    `json:"target"`      // address dialled
	Started         time.Time `json:"started"`
	BytesToTarget   int64     `json:"bytesToTarget"`
	BytesFromTarget int64     `json:"bytesFromTarget"`
}

// entry is one open stream in the registry.
type entry struct {
	seq      uint64 // set by register
	rid      string
	streamID string
	name     string
	target   string // plain streams: host:port
	start    time.Time

	// Set by register, before the entry is visible; read-only after.
	sc     net.Conn
	counts *activeConn // bytes: the target (plain) or the stream (mux)
	stop   context.CancelCauseFunc
	srv    *mux.Server           // mux streams
	conns  map[uint32]*connEntry // mux connections; guarded by Bridge.mu
}

// connEntry is what the registry keeps about a mux connection to decide
// whether a new policy still allows it.
type connEntry struct {
	kind   mux.Kind
	dest   string // as asked
	target string // as dialled
	host   string // dial: the host asked for
	addr   string // dial: the address dialled, "" if dialled by name
	port   uint16
}

func newEntry(req Request, name, target string) *entry {
	e := &entry{name: name, target: target, start: time.Now()}
	if ri, ok := req.(requestInfo); ok {
		e.rid, e.streamID = ri.RequestID(), ri.StreamID()
	}
	return e
}

// StreamIDFromURL is the hub's stream id: the last path segment of the
// streaming URL (hubsim's /bridges/<hub>/<device>/<name>/<id>; Azure's
// URLs end in an id too).
func StreamIDFromURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return path.Base(u.Path)
}

func (b *Bridge) register(e *entry, sc net.Conn, counts *activeConn, stop context.CancelCauseFunc) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nextSeq++
	e.seq, e.sc, e.counts, e.stop = b.nextSeq, sc, counts, stop
	b.streams[e.seq] = e
}

func (b *Bridge) unregister(e *entry) {
	b.mu.Lock()
	delete(b.streams, e.seq)
	b.mu.Unlock()
}

// info describes e; targets maps mux connection ids to dialled addresses.
func (e *entry) info(targets map[uint32]string) StreamInfo {
	i := StreamInfo{RequestID: e.rid, StreamID: e.streamID, Name: e.name, Kind: "plain", Target: e.target, Started: e.start}
	if e.counts != nil {
		i.BytesToTarget, i.BytesFromTarget = e.counts.to.Load(), e.counts.from.Load()
	}
	if e.srv != nil {
		i.Kind = "mux"
		// For a mux stream the counts wrap the stream itself: reads came
		// from the operator, writes went to it.
		i.BytesToTarget, i.BytesFromTarget = i.BytesFromTarget, i.BytesToTarget
		for _, c := range e.srv.Conns() {
			ci := ConnInfo{ID: c.ID, Kind: c.Request.Kind.String(), Destination: c.Request.Name, Started: c.Start,
				BytesToTarget: c.ToTarget, BytesFromTarget: c.FromTarget}
			ci.Target = targets[c.ID]
			i.Conns = append(i.Conns, ci)
		}
		slices.SortFunc(i.Conns, func(x, y ConnInfo) int { return int(x.ID) - int(y.ID) })
	}
	return i
}

// revoke closes what p no longer allows: plain streams whose target was
// removed or changed, mux streams when multiplexing is off, and mux
// connections whose target or SOCKS destination is no longer allowed.
// Each is told why (a close status for a stream, a notice for a mux
// connection) and audited with that reason.
func (b *Bridge) revoke(p Policy) {
	type cut struct {
		e      *entry
		id     uint32 // mux connection; 0 for the whole stream
		reason string
	}
	var cuts []cut
	b.mu.Lock()
	for _, e := range b.streams {
		if e.srv == nil {
			switch t, ok := p.Targets[e.name]; {
			case !ok:
				cuts = append(cuts, cut{e: e, reason: fmt.Sprintf("target %s removed by config reload", e.name)})
			case t != e.target:
				cuts = append(cuts, cut{e: e, reason: fmt.Sprintf("target %s changed by config reload", e.name)})
			}
			continue
		}
		if !p.Mux.Enabled {
			cuts = append(cuts, cut{e: e, reason: "multiplexing disabled by config reload"})
			continue
		}
		for id, c := range e.conns {
			if why := connDisallowed(p, c); why != "" {
				cuts = append(cuts, cut{e: e, id: id, reason: why})
			}
		}
	}
	b.mu.Unlock()
	for _, c := range cuts {
		if c.id != 0 {
			c.e.srv.Revoke(c.id, c.reason)
			continue
		}
		c.e.stop(revoked(c.reason)) // the stream closes with this status and reason
	}
}

// connDisallowed says why p no longer allows c ("" if it does).
func connDisallowed(p Policy, c *connEntry) string {
	switch c.kind {
	case mux.KindTarget:
		t, ok := p.Targets[c.dest]
		if !ok {
			return fmt.Sprintf("target %s removed by config reload", c.dest)
		}
		if t != c.target {
			return fmt.Sprintf("target %s changed by config reload", c.dest)
		}
	case mux.KindDial:
		if !dialAllowed(p.SocksAllow, c) {
			return fmt.Sprintf("destination %s no longer allowed by config reload", c.dest)
		}
	}
	return ""
}

func dialAllowed(rules []config.SocksRule, c *connEntry) bool {
	addr := parseAddr(c.addr)
	return config.SocksAllows(rules, c.host, addr, c.port)
}

// auditStream writes a stream's record and its log line.
func (b *Bridge) auditStream(e *entry, result, reason string, toTarget, fromTarget int64) {
	b.mu.Lock()
	device := b.device
	b.mu.Unlock()
	kind := "plain"
	if e.name == config.MuxStreamName {
		kind = "mux"
	}
	rec := stream.AuditRecord{
		Time: time.Now(), Side: "device", Event: "stream", Device: device, RequestID: e.rid, StreamID: e.streamID,
		Stream: e.name, Kind: kind, Target: e.target, Result: result, Reason: reason,
		BytesToTarget: toTarget, BytesFromTarget: fromTarget, Start: e.start, DurationMs: time.Since(e.start).Milliseconds(),
	}
	if kind == "plain" {
		rec.Destination = e.name
	}
	b.writeAudit(rec)
}

func (b *Bridge) writeAudit(rec stream.AuditRecord) {
	b.audit.Write(rec)
	b.log.Info("audit", "event", rec.Event, "stream", rec.Stream, "rid", rec.RequestID, "stream_id", rec.StreamID,
		"conn", rec.Conn, "kind", rec.Kind, "destination", rec.Destination, "target", rec.Target, "result", rec.Result,
		"reason", rec.Reason, "to_target", rec.BytesToTarget, "from_target", rec.BytesFromTarget, "duration_ms", rec.DurationMs)
}
