package daemon

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/health"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// twinHealth reads dev1's health report and twin version
// from the sim's hub, as a service-side tool would.
func twinHealth(t *testing.T, sim *hubsimtest.Sim, hub string) (health.Report, float64, string) {
	t.Helper()
	tw, err := sim.Hub(hub).GetTwin(context.Background(), "dev1", "")
	if err != nil {
		t.Fatal(err)
	}
	r, ok, err := health.FromTwin(tw.Properties.Reported)
	if err != nil {
		t.Fatalf("the twin's health does not parse: %v", err)
	}
	v := float64(tw.Version) // grows by one per twin change (here: per patch)
	if !ok {
		return health.Report{}, v, "no porthole property"
	}
	return r, v, fmt.Sprintf("%+v (twin version %v)", r, v)
}

// TestTwinHealthThroughHubsim: the agent boots while DPS is unreachable,
// then reports its health in the twin when it connects, the DPS failure
// included as the last error; then five rejected stream requests in quick
// succession reach the twin as ONE patch, sent only once the 30 s
// interval (on the injected clock) has passed since the previous one, with
// the counters batched and the last rejection named.
func TestTwinHealthThroughHubsim(t *testing.T) {
	sim, ctx, hub := outageSim(t)
	cfgPath, stateDir := enrollDev1(t, ctx, sim, hub, "")
	n := newNetSwitch(t, sim, netRefused)
	a := startSimAgent(t, cfgPath, stateDir, n, false)
	a.round(func(st *Status) {
		if st.Failing == "" {
			t.Fatalf("not failing with DPS refused: %+v", st)
		}
	})
	n.set(netUp)
	a.pumpUntil("connected", connectedTo(hub))

	var v0 float64
	testwait.For(t, 20*time.Second, "the first health report in the twin", func() (bool, string) {
		r, v, seen := twinHealth(t, sim, hub)
		v0 = v
		return r.Hub.Connected && r.Hub.Transport == "mqtt" && !r.Hub.Since.IsZero() && r.Version == "outage" &&
			r.Provisioning.Hub == hub && r.Provisioning.DeviceID == "dev1" && r.Provisioning.Substatus == "initialAssignment" &&
			!r.Provisioning.LastRegistration.IsZero() && !r.Started.IsZero() && r.LastRejection == nil &&
			r.LastError != nil && strings.Contains(r.LastError.Message, "dps: register") && !r.LastError.At.IsZero(), seen
	})

	const rejections = 5
	for i := 0; i < rejections; i++ {
		res, err := sim.Hub(hub).RequestStream(ctx, hubsimtest.HubStreamRequest{DeviceID: "dev1", Name: "nope"})
		if err != nil || res.Accepted {
			t.Fatalf("stream request %d: %+v, %v; want a rejection", i, res, err)
		}
	}
	// The reporter now waits out the interval on the injected clock.
	var wait time.Duration
	testwait.For(t, 20*time.Second, "the health reporter's wait", func() (bool, string) {
		for _, d := range a.clock.Pending() {
			if d > 0 && d <= 30*time.Second {
				wait = d
				return true, ""
			}
		}
		return false, fmt.Sprint("pending timers ", a.clock.Pending())
	})
	if r, v, seen := twinHealth(t, sim, hub); v != v0 || r.Streams.Rejected != 0 {
		t.Fatalf("patched within the interval: %s", seen)
	}
	a.clock.Advance(wait)
	var last health.Report
	testwait.For(t, 20*time.Second, "the batched health patch", func() (bool, string) {
		r, _, seen := twinHealth(t, sim, hub)
		last = r
		return r.Streams.Rejected == rejections, seen
	})
	if lr := last.LastRejection; lr == nil || lr.Stream != "nope" || lr.Reason != health.ReasonUnknownStream || lr.At.IsZero() {
		t.Errorf("last rejection %+v", lr)
	}
	if _, v, seen := twinHealth(t, sim, hub); v != v0+1 {
		t.Errorf("%v patches for %d rejections, want 1: %s", v-v0, rejections, seen)
	}
	// Nothing changed since: no further patch is waiting.
	st := a.status()
	if st.Streams.Rejected != rejections {
		t.Errorf("status streams %+v", st.Streams)
	}
}
