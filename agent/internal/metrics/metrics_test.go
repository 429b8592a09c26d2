package metrics

import (
	"bytes"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// parse reads Write's output with Prometheus's own parser.
func parse(t testing.TB, s Snapshot) map[string]*dto.MetricFamily {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, s); err != nil {
		t.Fatal(err)
	}
	// The legacy name rules: the strictest, what older node_exporters apply.
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("expfmt refuses the output: %v\n%s", err, buf.String())
	}
	return fams
}

// value finds the sample of family name whose labels include want.
func value(t testing.TB, fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, dto.MetricType) {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), f.GetType()
		default:
			return m.GetGauge().GetValue(), f.GetType()
		}
	}
	t.Fatalf("%s has no sample with %v", name, want)
	return 0, 0
}

func TestWriteParsesWithExpfmt(t *testing.T) {
	started := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	up := Snapshot{
		Up: true, Version: "v1.4.0", GoVersion: "go1.26.8", Started: started, Now: started.Add(90 * time.Second),
		Connected: true, Phase: "connected", HubReconnects: 3, Registrations: 2,
		StreamsOpen: 1, StreamsAccepted: 12, StreamsRejected: 4, BytesToTarget: 1 << 20, BytesFromTarget: 5 << 30,
	}
	type want struct {
		name   string
		labels map[string]string
		typ    dto.MetricType
		value  float64
	}
	tests := []struct {
		name string
		s    Snapshot
		want []want
		none []string // families that must be absent
	}{
		{"running", up, []want{
			{"porthole_agent_up", nil, dto.MetricType_GAUGE, 1},
			{"porthole_agent_build_info", map[string]string{"version": "v1.4.0", "goversion": "go1.26.8"}, dto.MetricType_GAUGE, 1},
			{"porthole_agent_start_time_seconds", nil, dto.MetricType_GAUGE, float64(started.Unix())},
			{"porthole_agent_uptime_seconds", nil, dto.MetricType_GAUGE, 90},
			{"porthole_agent_hub_connected", nil, dto.MetricType_GAUGE, 1},
			{"porthole_agent_phase", map[string]string{"phase": "connected"}, dto.MetricType_GAUGE, 1},
			{"porthole_agent_phase", map[string]string{"phase": "waiting"}, dto.MetricType_GAUGE, 0},
			{"porthole_agent_failing", map[string]string{"step": "hub"}, dto.MetricType_GAUGE, 0},
			{"porthole_agent_hub_reconnects_total", nil, dto.MetricType_COUNTER, 3},
			{"porthole_agent_dps_registrations_total", nil, dto.MetricType_COUNTER, 2},
			{"porthole_agent_streams_open", nil, dto.MetricType_GAUGE, 1},
			{"porthole_agent_streams_total", map[string]string{"result": "accepted"}, dto.MetricType_COUNTER, 12},
			{"porthole_agent_streams_total", map[string]string{"result": "rejected"}, dto.MetricType_COUNTER, 4},
			{"porthole_agent_stream_bytes_total", map[string]string{"direction": "to_target"}, dto.MetricType_COUNTER, 1 << 20},
			{"porthole_agent_stream_bytes_total", map[string]string{"direction": "from_target"}, dto.MetricType_COUNTER, 5 << 30},
		}, nil},
		{"failing hub, a phase this package does not know", func() Snapshot {
			s := up
			s.Connected, s.Phase, s.Failing = false, "dreaming", "hub"
			return s
		}(), []want{
			{"porthole_agent_hub_connected", nil, dto.MetricType_GAUGE, 0},
			{"porthole_agent_phase", map[string]string{"phase": "dreaming"}, dto.MetricType_GAUGE, 1},
			{"porthole_agent_phase", map[string]string{"phase": "connected"}, dto.MetricType_GAUGE, 0},
			{"porthole_agent_failing", map[string]string{"step": "hub"}, dto.MetricType_GAUGE, 1},
			{"porthole_agent_failing", map[string]string{"step": "dps lookup"}, dto.MetricType_GAUGE, 0},
		}, nil},
		{"stopped: only up and build info", Snapshot{Version: "v1.4.0", GoVersion: "go1.26.8"}, []want{
			{"porthole_agent_up", nil, dto.MetricType_GAUGE, 0},
			{"porthole_agent_build_info", map[string]string{"version": "v1.4.0"}, dto.MetricType_GAUGE, 1},
		}, []string{"porthole_agent_uptime_seconds", "porthole_agent_streams_total"}},
		{"label needing escapes", Snapshot{Up: true, Version: "v1 \"dev\"\\x\nnext", Phase: "connected"}, []want{
			{"porthole_agent_build_info", map[string]string{"version": "v1 \"dev\"\\x\nnext"}, dto.MetricType_GAUGE, 1},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fams := parse(t, tt.s)
			for _, w := range tt.want {
				v, typ := value(t, fams, w.name, w.labels)
				if v != w.value || typ != w.typ {
					t.Errorf("%s%v = %v (%v), want %v (%v)", w.name, w.labels, v, typ, w.value, w.typ)
				}
			}
			for _, n := range tt.none {
				if _, ok := fams[n]; ok {
					t.Errorf("%s present", n)
				}
			}
			for name, f := range fams {
				if f.GetHelp() == "" {
					t.Errorf("%s has no help", name)
				}
			}
		})
	}
}

// FuzzLabelValue: any version string yields output Prometheus parses,
// with the label value intact.
func FuzzLabelValue(f *testing.F) {
	for _, s := range []string{"v1.0.0", `a"b`, `a\b`, "a\nb", `\"\n`, "ünï", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, version string) {
		if !utf8Valid(version) {
			return // label values are UTF-8
		}
		fams := parse(t, Snapshot{Up: true, Version: version, GoVersion: "go"})
		m := fams["porthole_agent_build_info"].GetMetric()[0]
		for _, l := range m.GetLabel() {
			if l.GetName() == "version" && l.GetValue() != version {
				t.Fatalf("version %q came back as %q", version, l.GetValue())
			}
		}
	})
}
