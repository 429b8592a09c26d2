package daemon

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/porthole-iot/porthole/agent/internal/metrics"
	"github.com/porthole-iot/porthole/sdk/retry/retrytest"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// readProm parses the metrics file with Prometheus's parser; ok is false
// while the file is absent.
func readProm(t *testing.T, path string) (map[string]*dto.MetricFamily, bool) {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the metrics file does not parse: %v\n%s", err, data)
	}
	return fams, true
}

func gauge(fams map[string]*dto.MetricFamily, name string) float64 {
	f, ok := fams[name]
	if !ok || len(f.GetMetric()) == 0 {
		return -1
	}
	m := f.GetMetric()[0]
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// TestMetricsTextfile: with metrics.textfile the agent writes the file at
// start, rewrites it every interval (on the injected clock) with what
// changed, and leaves porthole_agent_up 0 behind when it stops.
func TestMetricsTextfile(t *testing.T) {
	dir := t.TempDir()
	clock := retrytest.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	a := startAgentWith(t, fmt.Sprintf("streams:\n  targets:\n    ssh: %s\nmetrics:\n  textfile: %s\n  interval: 20s\n", echoTarget(t), dir),
		0, context.Background(), nil, func(o *Options) { o.Clock = clock })
	path := filepath.Join(dir, metrics.FileName)
	h := a.hub()
	a.waitStatus("connected", func(s *Status) bool { return s.Connected })

	testwait.For(t, 20*time.Second, "the metrics file", func() (bool, string) {
		fams, ok := readProm(t, path)
		return ok && gauge(fams, "porthole_agent_up") == 1, fmt.Sprint(ok)
	})
	svc := openStream(t, h)
	defer svc.Close()
	// The interval's timer, then the next write shows the open stream.
	testwait.For(t, 20*time.Second, "the metrics writer's wait", func() (bool, string) {
		for _, d := range clock.Pending() {
			if d == 20*time.Second {
				return true, ""
			}
		}
		return false, fmt.Sprint(clock.Pending())
	})
	clock.Advance(20 * time.Second)
	testwait.For(t, 20*time.Second, "the open stream in the metrics file", func() (bool, string) {
		fams, _ := readProm(t, path)
		return gauge(fams, "porthole_agent_streams_open") == 1 && gauge(fams, "porthole_agent_hub_connected") == 1 &&
			gauge(fams, "porthole_agent_dps_registrations_total") == 1, fmt.Sprint(gauge(fams, "porthole_agent_streams_open"))
	})
	svc.Close()

	a.stop()
	fams, _ := readProm(t, path)
	if gauge(fams, "porthole_agent_up") != 0 || gauge(fams, "porthole_agent_streams_open") != -1 {
		t.Errorf("after stop: up %v, streams_open %v; want 0 and absent", gauge(fams, "porthole_agent_up"), gauge(fams, "porthole_agent_streams_open"))
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || !strings.HasSuffix(ents[0].Name(), ".prom") {
		t.Errorf("the directory holds %v, want only the .prom file", ents)
	}
}
