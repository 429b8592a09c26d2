package fleetplan

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func run(t *testing.T, sc Scenario) *Result {
	t.Helper()
	r, err := Run(t.Context(), sc)
	if err != nil {
		t.Fatalf("%s: %v", sc.Name, err)
	}
	return r
}

func csvOf(t *testing.T, rs ...*Result) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteCSV(&b, rs); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Same seed, same CSV bytes — for a scenario that uses every moving part
// (waves, a quota change, mixed transports with latencies, retries).
func TestDeterministic(t *testing.T) {
	mqtt := 40
	sc := Scenario{Name: "det", Devices: 250, Quota: Quota{PerMinute: 200}, Waves: Waves{Size: 100, Interval: 30 * time.Second},
		QuotaChanges: []QuotaChange{{At: time.Minute, PerMinute: 400}}, MQTTPercent: &mqtt,
		Latency: Latency{HTTPS: 300 * time.Millisecond, MQTT: 150 * time.Millisecond}, HubConnectsPerSecond: 20}
	a, b := csvOf(t, run(t, sc)), csvOf(t, run(t, sc))
	if !bytes.Equal(a, b) {
		t.Fatalf("same seed, different CSV:\n%s\n%s", a, b)
	}
	sc.Seed = 2
	if c := csvOf(t, run(t, sc)); bytes.Equal(a, c) {
		t.Errorf("seeds 1 and 2 gave the same CSV; is the seed used?\n%s", a)
	}
}

// The storm the socket-level benchmark runs: every device registers at
// once under the quota. The planner must keep DPS's promises (admissions
// per window within quota + burst) and converge at the quota's rate.
func TestStormAtQuotaRate(t *testing.T) {
	const n, quota = 600, 600
	r := run(t, StormScenario(n, quota, 25, 1))
	if r.Converged != n || r.HubDevices[hubName(0)]+r.HubDevices[hubName(1)] != n {
		t.Fatalf("converged %d of %d; hubs hold %v", r.Converged, n, r.HubDevices)
	}
	if max := quota + quota/10 + 1; r.PeakPerMinute > max {
		t.Errorf("peak %d admitted per minute > quota + burst + 1 = %d", r.PeakPerMinute, max)
	}
	// n − burst admissions at 10/s, then sdk/dps's 2 s poll wait, plus at
	// most the 1 s Retry-After jitter.
	ideal := time.Duration(float64(n-quota/10-1)/float64(quota)*float64(time.Minute)) + 2*time.Second
	if r.Assigned100 < ideal || r.Assigned100 > ideal+2*time.Second {
		t.Errorf("last device assigned after %v, want %v to %v", r.Assigned100, ideal, ideal+2*time.Second)
	}
	if r.Throttled429 == 0 || r.RetriesMax < 1 {
		t.Errorf("the quota did not bite: %d 429s, max retries %d", r.Throttled429, r.RetriesMax)
	}
}

// The fleet moves to new hubs through DPS's real reprovisioning: the old
// hub's registry empties; staging in waves keeps each device's own wait
// short; raising the quota mid-way finishes the later waves sooner (an
// all-at-once fleet would not gain: every device already holds the slot
// its 429 promised).
func TestReprovisionScenarios(t *testing.T) {
	base := Scenario{Event: EventReprovision, Devices: 600, Quota: Quota{PerMinute: 150}, WaitedLongerThan: 2 * time.Minute}
	all := base
	all.Name = "all"
	staged := base
	staged.Name, staged.Waves = "staged", Waves{Size: 150, Interval: time.Minute}
	scaled := staged
	scaled.Name, scaled.QuotaChanges = "staged+scaled", []QuotaChange{{At: time.Minute, PerMinute: 600}}
	ra, rs, rq := run(t, all), run(t, staged), run(t, scaled)
	for _, r := range []*Result{ra, rs, rq} {
		if r.Converged != base.Devices || r.HubDevices[oldHub] != 0 {
			t.Errorf("%s: converged %d of %d, old hub still holds %d", r.Scenario.Name, r.Converged, base.Devices, r.HubDevices[oldHub])
		}
		if r.Registrations < base.Devices {
			t.Errorf("%s: %d registrations for %d devices", r.Scenario.Name, r.Registrations, base.Devices)
		}
	}
	if rs.WaitedLonger >= ra.WaitedLonger {
		t.Errorf("staged: %d devices waited > 2 min, all at once %d; want fewer staged", rs.WaitedLonger, ra.WaitedLonger)
	}
	if rq.T100 >= rs.T100-30*time.Second {
		t.Errorf("quota raised at 1 min: done at %v, not well before %v", rq.T100, rs.T100)
	}
	t.Log("\n" + Table([]*Result{ra, rs, rq}))
}

// Boots: from the cached hub nothing reaches DPS; lookup first asks DPS
// once per device. A short outage (under the agent's 15-minute window)
// never reaches DPS; a long one makes every device ask DPS.
func TestBootAndOutage(t *testing.T) {
	cached := run(t, Scenario{Name: "cached", Event: EventBoot, Devices: 400, HubConnectsPerSecond: 20})
	lookup := run(t, Scenario{Name: "lookup", Event: EventBoot, LookupFirst: true, Devices: 400, HubConnectsPerSecond: 20})
	short := run(t, Scenario{Name: "short", Event: EventOutage, Devices: 300, Outage: 2 * time.Minute})
	long := run(t, Scenario{Name: "long", Event: EventOutage, Devices: 300, Outage: 17 * time.Minute})
	if cached.Lookups != 0 || cached.Registrations != 0 || cached.HubThrottled == 0 {
		t.Errorf("cached boot: %d lookups, %d registrations, %d throttled connects (want 0, 0, > 0)", cached.Lookups, cached.Registrations, cached.HubThrottled)
	}
	if lookup.Lookups < 400 {
		t.Errorf("lookup-first boot: %d lookups for 400 devices", lookup.Lookups)
	}
	if short.Lookups != 0 || short.T50 < 2*time.Minute || short.T100 > 2*time.Minute+time.Minute+time.Second {
		t.Errorf("short outage: %d lookups, converged %v..%v", short.Lookups, short.T50, short.T100)
	}
	if long.Lookups < 300 || long.HubDown == 0 {
		t.Errorf("long outage: %d lookups, %d refused while down", long.Lookups, long.HubDown)
	}
	for _, r := range []*Result{cached, lookup, short, long} {
		if r.Converged != r.Scenario.Devices {
			t.Errorf("%s: converged %d of %d", r.Scenario.Name, r.Converged, r.Scenario.Devices)
		}
	}
}

func TestCompare(t *testing.T) {
	sock := Figures{Converge: 200 * time.Second, PeakPerWindow: 650}
	tests := []struct {
		name    string
		planner Figures
		wantErr string
	}{
		{"equal", sock, ""},
		{"within 10%", Figures{Converge: 219 * time.Second, PeakPerWindow: 600}, ""},
		{"slow", Figures{Converge: 221 * time.Second, PeakPerWindow: 650}, "time to converge"},
		{"fast", Figures{Converge: 179 * time.Second, PeakPerWindow: 650}, "time to converge"},
		{"peak high", Figures{Converge: 200 * time.Second, PeakPerWindow: 716}, "peak per window"},
		{"never converged", Figures{Converge: -1, PeakPerWindow: 650}, "never converged"},
	}
	for _, tt := range tests {
		c, err := Compare(tt.planner, sock, Tolerance)
		if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.wantErr)
		}
		if !strings.Contains(c.String(), "socket-level") {
			t.Errorf("%s: table %q", tt.name, c.String())
		}
	}
	if _, err := Compare(sock, Figures{}, Tolerance); err == nil {
		t.Error("an empty socket-level run compared fine")
	}
}

func TestParsePlan(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"ok", "scenarios:\n- name: a\n  devices: 10\n  waves: {size: 5, interval: 1m}\n  quota_changes: [{at: 2m, per_minute: 50}]\n", ""},
		{"unknown field", "scenarios:\n- name: a\n  devcies: 10\n", "devcies"},
		{"no scenarios", "scenarios: []\n", "no scenarios"},
		{"bad event", "scenarios:\n- event: explode\n", "event"},
		{"waves half", "scenarios:\n- waves: {size: 5}\n", "waves"},
		{"mqtt range", "scenarios:\n- mqtt_percent: 101\n", "mqtt_percent"},
		{"lookup without cache", "scenarios:\n- {event: boot, lookup_first: true, no_cache: true}\n", "lookup_first"},
	}
	for _, tt := range tests {
		p, err := ParsePlan("plan.yaml", []byte(tt.yaml))
		if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.wantErr)
			continue
		}
		if err == nil && (p.Scenarios[0].Devices != 10 || p.Scenarios[0].Quota.PerMinute != DefaultQuotaPerMinute) {
			t.Errorf("%s: %+v", tt.name, p.Scenarios[0])
		}
	}
}

func FuzzParsePlan(f *testing.F) {
	f.Add([]byte("scenarios:\n- name: a\n  devices: 10\n"))
	f.Add([]byte("scenarios:\n- {event: outage, outage: 20m, hubs: 3}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePlan("fuzz.yaml", b)
		if err != nil {
			return
		}
		for _, sc := range p.Scenarios {
			if err := sc.validate(); err != nil {
				t.Fatalf("ParsePlan accepted an invalid scenario: %v", err)
			}
		}
	})
}

// The plots are written as PNG and SVG, one file per plot.
func TestWritePlots(t *testing.T) {
	a := run(t, Scenario{Name: "all", Devices: 100, Quota: Quota{PerMinute: 60}})
	s := run(t, Scenario{Name: "staged", Devices: 100, Quota: Quota{PerMinute: 60}, Waves: Waves{Size: 30, Interval: time.Minute},
		QuotaChanges: []QuotaChange{{At: time.Minute, PerMinute: 120}}})
	dir := t.TempDir()
	paths, err := WritePlots(dir, []*Result{a, s})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2*len(PlotFiles) {
		t.Fatalf("wrote %v", paths)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		switch filepath.Ext(p) {
		case ".png":
			if !bytes.HasPrefix(b, []byte("\x89PNG")) {
				t.Errorf("%s is not a PNG", p)
			}
		case ".svg":
			if !bytes.Contains(b, []byte("<svg")) || !bytes.Contains(b, []byte("staged")) {
				t.Errorf("%s: not an SVG naming the scenarios", p)
			}
		}
	}
}

// The sample plan in configs/ parses.
func TestSamplePlan(t *testing.T) {
	p, err := LoadPlan(filepath.Join("..", "..", "configs", "fleet-plan.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Scenarios) != 5 || p.Scenarios[4].Outage != 20*time.Minute || *p.Scenarios[4].MQTTPercent != 50 {
		t.Errorf("sample plan: %+v", p.Scenarios)
	}
}
