package stream

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// AuditRecord is one line of a stream audit trail: one per stream and one
// per connection inside a multiplexed stream, written when it ends (or is
// rejected). The device agent and the operator's porthole write the same
// shape, each from its own view. Byte counts are from the target's side:
// ToTarget went from the operator to the device's target.
type AuditRecord struct {
	Time   time.Time `json:"time"`
	Side   string    `json:"side"`  // "device" or "operator"
	Event  string    `json:"event"` // "stream" or "connection"
	Device string    `json:"device"`
	// RequestID is the hub's $rid of the stream request (device side);
	// StreamID is the hub's stream id, the last segment of the streaming
	// URL, which the hub's DeviceStreams records carry together with the
	// policy (skn) that asked for the stream.
	RequestID string `json:"requestId,omitempty"`
	StreamID  string `json:"streamId,omitempty"`
	Stream    string `json:"stream"`         // the stream name
	Conn      uint32 `json:"conn,omitempty"` // connection id inside a mux stream
	// Kind is "plain" or "mux" for a stream, "target" or "dial" for a
	// connection inside a mux stream.
	Kind string `json:"kind"`
	// Destination is what was asked for: a target name, or host:port for
	// a SOCKS dial. Target is the address the device dialled.
	Destination string `json:"destination,omitempty"`
	Target      string `json:"target,omitempty"`
	// Result is "accepted" or "rejected"; Reason says why it was rejected,
	// or how it ended when accepted.
	Result          string    `json:"result"`
	Reason          string    `json:"reason"`
	BytesToTarget   int64     `json:"bytesToTarget"`
	BytesFromTarget int64     `json:"bytesFromTarget"`
	Start           time.Time `json:"start"`
	DurationMs      int64     `json:"durationMs"`
}

// AuditLog writes AuditRecords as JSON lines; safe for concurrent use. A
// nil *AuditLog discards.
type AuditLog struct {
	mu  sync.Mutex
	w   io.Writer // guarded by mu
	err error     // first write error; guarded by mu
}

// NewAuditLog returns an AuditLog writing to w (nil: discard).
func NewAuditLog(w io.Writer) *AuditLog {
	if w == nil {
		return nil
	}
	return &AuditLog{w: w}
}

// Write appends one record (one Write call per line).
func (a *AuditLog) Write(r AuditRecord) {
	if a == nil {
		return
	}
	line, err := json.Marshal(r)
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.w.Write(append(line, '\n')); err != nil && a.err == nil {
		a.err = err
	}
}

// Err returns the first write error.
func (a *AuditLog) Err() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}
