package metrics

import (
	"bufio"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FileName is the file written in the textfile collector's directory
// (node_exporter reads *.prom).
const FileName = "porthole_agent.prom"

// ContentType is the exposition format's media type, for an HTTP server
// that would serve Write's output.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Snapshot is what the metrics report, taken at one moment.
type Snapshot struct {
	// Up is false in the file left behind at stop.
	Up        bool
	Version   string
	GoVersion string
	Started   time.Time
	Now       time.Time

	Connected bool
	// Phase is the provisioning flow's phase ("connected", "waiting" …).
	Phase string
	// Failing is the step that keeps failing ("" when none).
	Failing string

	HubReconnects uint64
	Registrations uint64

	StreamsOpen     int
	StreamsAccepted uint64
	StreamsRejected uint64
	BytesToTarget   uint64
	BytesFromTarget uint64
}

// Phases and steps a snapshot may name; every one is written (0 or 1), so
// a series does not vanish when its value is 0.
var (
	Phases = []string{"starting", "lookup", "registering", "connecting", "connected", "reconnecting", "waiting", "stopped"}
	Steps  = []string{"dps", "dps lookup", "hub"}
)

// Write writes s in the text exposition format.
func Write(w io.Writer, s Snapshot) error {
	e := &enc{w: bufio.NewWriter(w)}
	e.family("porthole_agent_up", "gauge", "1 while the agent runs; 0 in the file it leaves at stop.")
	e.sample("porthole_agent_up", nil, b2f(s.Up))
	e.family("porthole_agent_build_info", "gauge", "The agent's version and Go version (the value is 1).")
	e.sample("porthole_agent_build_info", []label{{"goversion", s.GoVersion}, {"version", s.Version}}, 1)
	if !s.Up {
		return e.flush()
	}
	e.family("porthole_agent_start_time_seconds", "gauge", "When the agent started, in seconds since the Unix epoch.")
	e.sample("porthole_agent_start_time_seconds", nil, unix(s.Started))
	e.family("porthole_agent_uptime_seconds", "gauge", "Seconds since the agent started.")
	e.sample("porthole_agent_uptime_seconds", nil, math.Max(0, s.Now.Sub(s.Started).Seconds()))
	e.family("porthole_agent_hub_connected", "gauge", "1 while the agent is connected to its IoT hub.")
	e.sample("porthole_agent_hub_connected", nil, b2f(s.Connected))
	e.family("porthole_agent_phase", "gauge", "1 for the current phase of the provisioning flow.")
	for _, p := range withExtra(Phases, s.Phase) {
		e.sample("porthole_agent_phase", []label{{"phase", p}}, b2f(p == s.Phase))
	}
	e.family("porthole_agent_failing", "gauge", "1 while a step keeps failing.")
	for _, st := range withExtra(Steps, s.Failing) {
		e.sample("porthole_agent_failing", []label{{"step", st}}, b2f(st == s.Failing))
	}
	e.family("porthole_agent_hub_reconnects_total", "counter", "Hub connections lost since the agent started.")
	e.sample("porthole_agent_hub_reconnects_total", nil, float64(s.HubReconnects))
	e.family("porthole_agent_dps_registrations_total", "counter", "Registrations with DPS since the agent started.")
	e.sample("porthole_agent_dps_registrations_total", nil, float64(s.Registrations))
	e.family("porthole_agent_streams_open", "gauge", "Streams open now.")
	e.sample("porthole_agent_streams_open", nil, float64(s.StreamsOpen))
	e.family("porthole_agent_streams_total", "counter", "Stream requests by result since the agent started.")
	e.sample("porthole_agent_streams_total", []label{{"result", "accepted"}}, float64(s.StreamsAccepted))
	e.sample("porthole_agent_streams_total", []label{{"result", "rejected"}}, float64(s.StreamsRejected))
	e.family("porthole_agent_stream_bytes_total", "counter", "Bytes copied between streams and their targets.")
	e.sample("porthole_agent_stream_bytes_total", []label{{"direction", "from_target"}}, float64(s.BytesFromTarget))
	e.sample("porthole_agent_stream_bytes_total", []label{{"direction", "to_target"}}, float64(s.BytesToTarget))
	return e.flush()
}

// withExtra is known plus v when v is not in it (a phase this package
// does not list yet still shows).
func withExtra(known []string, v string) []string {
	if v == "" {
		return known
	}
	for _, k := range known {
		if k == v {
			return known
		}
	}
	out := append(append([]string(nil), known...), v)
	sort.Strings(out[len(known):])
	return out
}

type label struct{ name, value string }

// enc writes the format; the first error sticks.
type enc struct {
	w   *bufio.Writer
	err error
}

func (e *enc) write(s string) {
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
}

func (e *enc) family(name, typ, help string) {
	e.write("# HELP " + name + " " + escapeHelp(help) + "\n# TYPE " + name + " " + typ + "\n")
}

func (e *enc) sample(name string, labels []label, v float64) {
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(l.name)
			b.WriteString(`="`)
			b.WriteString(escapeLabel(l.value))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(v))
	b.WriteByte('\n')
	e.write(b.String())
}

func (e *enc) flush() error {
	if e.err != nil {
		return e.err
	}
	return e.w.Flush()
}

// escapeLabel escapes a label value: backslash, double quote, newline.
func escapeLabel(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// escapeHelp escapes help text: backslash and newline.
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// formatFloat writes v as the format wants it (+Inf, -Inf, NaN spelled out).
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// unix is t in seconds since the epoch, with the fraction; 0 for a zero
// time.
func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
