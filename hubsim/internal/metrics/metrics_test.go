package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	dto "github.com/prometheus/client_model/go"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/auth"
	"github.com/porthole-iot/porthole/sdk/iothub"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scrape fetches /metrics with the admin token and parses it.
func scrape(t *testing.T, sim *hubsimtest.Sim) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := sim.AdminDo(context.Background(), http.MethodGet, "/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// value is the sample of family name whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

// A device's traffic shows up in the scraped counters of its hub only.
func TestScrape(t *testing.T) {
	sim := hubsimtest.New(t)
	host, other := sim.HubHostNames[0], sim.HubHostNames[1]
	key := sim.CreateDevice(host, "dev1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := iothub.Dial(ctx, iothub.Config{HostName: host, DeviceID: "dev1", SharedAccessKey: key,
		RootCAs: sim.CAPool, DialContext: sim.DialContext})
	if err != nil {
		t.Fatal(err)
	}
	c.OnMethod("ping", func(context.Context, json.RawMessage) (int, any) { return 200, "pong" })
	c.OnC2D(func(iothub.Message) {})
	if err := c.WaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := c.SendEvent(ctx, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.GetTwin(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateReported(ctx, map[string]any{"a": 1}); err != nil {
		t.Fatal(err)
	}
	h := sim.Hub(host)
	if _, err := h.InvokeMethod(ctx, "dev1", "", hubsimtest.HubMethodRequest{MethodName: "ping"}); err != nil {
		t.Fatal(err)
	}
	if err := h.SendC2D(ctx, "dev1", hubsimtest.C2DMessage{Body: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	// A registration with a key DPS does not know: 401, counted as unauthorized.
	sim.EnrollSymmetricKey("reg-1", nil)
	tok, err := auth.DPSToken(sim.IDScope, "reg-1", hubsimtest.NewKey(t), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "https://"+sim.GlobalEndpoint+"/"+sim.IDScope+
		"/registrations/reg-1/register?api-version=2021-06-01", strings.NewReader(`{"registrationId":"reg-1"}`))
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := sim.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("register with a wrong key: %s", resp.Status)
	}

	hub := map[string]string{"hub": host}
	testwait.For(t, 10*time.Second, "C2D delivered and counted", func() (bool, string) {
		v, _ := value(scrape(t, sim), "hubsim_c2d_messages_total", map[string]string{"hub": host, "state": "delivered"})
		return v == 1, fmt.Sprint("delivered = ", v)
	})
	fams := scrape(t, sim)
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"hubsim_devices", hub, 1},
		{"hubsim_devices_connected", hub, 1},
		{"hubsim_connects_total", hub, 1},
		{"hubsim_disconnects_total", hub, 0},
		{"hubsim_messages_in_total", hub, 3},
		{"hubsim_twin_operations_total", map[string]string{"hub": host, "op": "get"}, 1},
		{"hubsim_twin_operations_total", map[string]string{"hub": host, "op": "patch"}, 1},
		{"hubsim_method_calls_total", hub, 1},
		{"hubsim_c2d_messages_total", map[string]string{"hub": host, "state": "queued"}, 1},
		{"hubsim_throttled_total", hub, 0},
		{"hubsim_streams_open", hub, 0},
		{"hubsim_connects_total", map[string]string{"hub": other}, 0},
		{"hubsim_messages_in_total", map[string]string{"hub": other}, 0},
		{"hubsim_dps_registrations_total", map[string]string{"outcome": "assigned"}, 0},
		{"hubsim_dps_registrations_total", map[string]string{"outcome": "unauthorized"}, 1},
		{"hubsim_dps_requests_total", map[string]string{"kind": "register"}, 1},
	}
	for _, tt := range tests {
		got, ok := value(fams, tt.name, tt.labels)
		if !ok || got != tt.want {
			t.Errorf("%s%v = %v (present %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	// Method request, twin responses and the C2D message went out.
	if v, _ := value(fams, "hubsim_messages_out_total", hub); v < 4 {
		t.Errorf("hubsim_messages_out_total = %v, want ≥ 4", v)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 10*time.Second, "disconnect counted", func() (bool, string) {
		v, _ := value(scrape(t, sim), "hubsim_disconnects_total", hub)
		return v == 1, ""
	})
}

// Without the admin credential /metrics answers 401.
func TestScrapeNeedsCredential(t *testing.T) {
	sim := hubsimtest.New(t)
	resp, err := sim.HTTPClient().Get("https://" + sim.HubHostNames[0] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
}
