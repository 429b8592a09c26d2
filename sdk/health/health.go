package health

import (
	"encoding/json"
	"time"
)

// Property is the reported property the report is written under.
const Property = "porthole"

// MaxText bounds the free-text fields (error messages, reload details), so
// a long error cannot push the twin towards Azure's 32 KB limit on
// reported properties.
const MaxText = 512

// Report is the agent's health.
type Report struct {
	// Version is the agent's version.
	Version string `json:"version"`
	// Started is when the agent process started.
	Started Time `json:"started"`
	// Hub is the hub connection.
	Hub Hub `json:"hub"`
	// Provisioning is the device's assignment.
	Provisioning Provisioning `json:"provisioning"`
	// Streams counts streams since the agent started.
	Streams Streams `json:"streams"`
	// LastRejection is the last stream request the agent refused; nil
	// when none was.
	LastRejection *Rejection `json:"lastRejection"`
	// LastError is the last connection or provisioning error since the
	// agent started; nil when there was none. (Compare its time with
	// Hub.Since to tell a past failure from a current one.)
	LastError *Event `json:"lastError"`
	// ConfigReload is the outcome of the last config reload (SIGHUP); nil
	// when there was none.
	ConfigReload *Reload `json:"configReload"`
}

// Hub is the hub connection.
type Hub struct {
	// Transport is "mqtt" or "mqtt-ws".
	Transport string `json:"transport"`
	// Connected is always true in a report the agent could send; it is
	// there for readers of an older report (the twin keeps the last one).
	Connected bool `json:"connected"`
	// Since is when the current connection was established.
	Since Time `json:"since"`
}

// Provisioning is the device's assignment by DPS.
type Provisioning struct {
	Hub       string `json:"hub"`
	DeviceID  string `json:"deviceId"`
	Substatus string `json:"substatus"`
	// LastRegistration is when the device last registered with DPS.
	LastRegistration Time `json:"lastRegistration"`
}

// Streams counts streams.
type Streams struct {
	Open     int    `json:"open"`
	Accepted uint64 `json:"accepted"`
	Rejected uint64 `json:"rejected"`
}

// Rejection is a refused stream request.
type Rejection struct {
	// Stream is the stream name the service asked for.
	Stream string `json:"stream"`
	// Reason is one of the Reason constants, or TargetUnreachable's
	// text (which names the target and why it did not answer).
	Reason string `json:"reason"`
	At     Time   `json:"at"`
}

// Reasons a stream is rejected for.
const (
	ReasonUnknownStream = "unknown stream"
	ReasonTooMany       = "too many open streams"
	ReasonShuttingDown  = "agent shutting down"
	// ReasonTargetUnreachable is what agents before TargetUnreachable
	// reported for a target that did not answer.
	ReasonTargetUnreachable = "target unreachable"
)

// TargetUnreachable is the Reason for a stream refused because its target
// did not answer the agent's dial, naming the target and the cause (e.g.
// "connection refused"): "target 127.0.0.1:80 is not answering
// (connection refused)". The operator CLI prints it as is; it is clipped
// to MaxText.
func TargetUnreachable(target, cause string) string {
	r := "target " + target + " is not answering"
	if cause != "" {
		r += " (" + cause + ")"
	}
	return Clip(r)
}

// Event is a message with its time.
type Event struct {
	Message string `json:"message"`
	At      Time   `json:"at"`
}

// Reload is a config reload's outcome.
type Reload struct {
	At Time `json:"at"`
	// Result is "applied" or "refused".
	Result string `json:"result"`
	// Detail lists the applied changes, or says why the reload was
	// refused.
	Detail string `json:"detail"`
}

// Reload results.
const (
	ReloadApplied = "applied"
	ReloadRefused = "refused"
)

// Patch is the twin reported-properties patch that writes r.
func (r Report) Patch() map[string]any { return map[string]any{Property: r} }

// Clip shortens s to MaxText bytes (on a rune boundary), marking the cut.
func Clip(s string) string {
	if len(s) <= MaxText {
		return s
	}
	cut := MaxText - len("…")
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// Time is a time in a report: RFC 3339 in UTC, or null when zero.
type Time struct{ time.Time }

// At returns t as a Time.
func At(t time.Time) Time { return Time{t} }

// MarshalJSON writes the UTC time, or null.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.UTC().Format(time.RFC3339))
}

// UnmarshalJSON reads an RFC 3339 time or null.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return err
	}
	*t = Time{v}
	return nil
}

// FromTwin extracts the report from a twin's reported properties (the
// map under "properties.reported"); ok is false when there is none.
func FromTwin(reported map[string]any) (r Report, ok bool, err error) {
	v, ok := reported[Property]
	if !ok || v == nil {
		return Report{}, false, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return Report{}, false, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return Report{}, false, err
	}
	return r, true, nil
}
