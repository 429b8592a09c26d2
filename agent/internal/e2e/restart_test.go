package e2e

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/daemon"
	"github.com/porthole-iot/porthole/sdk/service"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// TestAgentSurvivesHubsimRestart: hubsim keeps its registry, twins and DPS
// records on disk, so an agent that was connected before hubsim is killed
// (SIGKILL) and started again on the same ports and state directory
// reconnects on its own: nobody enrolls the device again, the agent does
// not even register with DPS again (its cached assignment's credentials
// still work on the hub), and the twin is as it was.
func TestAgentSurvivesHubsimRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	requireLinux(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a stream target; never dialled here
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	w := newWorld(t, "", map[string]string{"echo": ln.Addr().String()})
	w.dumpOnFailure()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	if _, err := w.sim.hubClient(t).UpdateTwin(ctx, deviceID, service.TwinPatch{Tags: map[string]any{"site": "lab-7"}}, "*"); err != nil {
		t.Fatal(err)
	}
	registrations := func() int { return strings.Count(w.agent.readLog(), `msg=registered`) }
	before := registrations()
	if before == 0 {
		t.Fatalf("the agent never logged its registration\n%s", w.agent.tail(30))
	}

	ports := w.sim.status.Ports
	oldCS := w.sim.status.hubConnectionString(hubHost)
	w.sim.kill()
	killed := time.Now()
	w.waitAgent("disconnected", time.Minute, func(s *daemon.Status) bool { return !s.Connected })
	w.sim = startSim(t, w.dir, ports.HTTPS, ports.MQTT)
	if w.sim.status.hubConnectionString(hubHost) != oldCS {
		t.Fatal("hubsim restarted with other keys")
	}
	// No enroll call here: the enrollment, the registration and the device
	// identity must all have survived.
	w.waitAgent("reconnected", 2*time.Minute, func(s *daemon.Status) bool { return s.Connected })
	t.Logf("agent reconnected %v after hubsim was killed", time.Since(killed).Round(time.Millisecond))

	hc := w.sim.hubClient(t)
	testwait.For(t, 30*time.Second, "the hub to show the device connected", func() (bool, string) {
		d, err := hc.GetDevice(ctx, deviceID)
		if err != nil {
			return false, err.Error()
		}
		return d.ConnectionState == "Connected", d.ConnectionState
	})
	tw, err := hc.GetTwin(ctx, deviceID)
	if err != nil {
		t.Fatal(err)
	}
	if tw.Tags["site"] != "lab-7" {
		t.Errorf("twin tags after the restart: %v", tw.Tags)
	}
	if after := registrations(); after != before {
		t.Errorf("the agent registered with DPS again (%d → %d registrations): the hub forgot its identity", before, after)
	}
	w.stop()
}
