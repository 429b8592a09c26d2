package sim

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/admin"
	"github.com/porthole-iot/porthole/hubsim/internal/relay"
)

// Every declarative fault kind reaches its hook, for the hub and device it
// names only, and stops when cleared.
func TestFaultWiring(t *testing.T) {
	fs := admin.NewFaults()
	hf, rf := hubFaults(fs), relayFaults(fs)
	const hub, dev = "hub-eu.local", "dev1"
	spec := relay.StreamSpec{Hub: hub, DeviceID: dev, Name: "ssh"}
	other := relay.StreamSpec{Hub: hub, DeviceID: "dev2", Name: "ssh"}
	req := httptest.NewRequest("GET", "/devices/"+dev, nil)
	req.SetPathValue("id", dev)
	tests := []struct {
		fault admin.Fault
		on    func() bool // the hook fires for dev on hub
		off   func() bool // the hook fires for another device
	}{
		{admin.Fault{Kind: admin.KindRefuseConnect, ConnackCode: 2},
			func() bool { c, ok := hf.RefuseConnect(hub, dev); return ok && c == 2 },
			func() bool { _, ok := hf.RefuseConnect(hub, "dev2"); return ok }},
		{admin.Fault{Kind: admin.KindDropConnection, After: admin.Duration(time.Second)},
			func() bool { d, ok := hf.DropConnection(hub, dev); return ok && d == time.Second },
			func() bool { _, ok := hf.DropConnection(hub, "dev2"); return ok }},
		{admin.Fault{Kind: admin.KindThrottleREST, RetryAfter: admin.Duration(3 * time.Second)},
			func() bool { d, ok := hf.ThrottleREST(hub, req); return ok && d == 3*time.Second },
			func() bool { _, ok := hf.ThrottleREST("hub-us.local", req); return ok }},
		{admin.Fault{Kind: admin.KindDelayStream, Delay: admin.Duration(2 * time.Second)},
			func() bool { d, rej := hf.StreamRequest(hub, dev, "ssh"); return d == 2*time.Second && !rej },
			func() bool { d, _ := hf.StreamRequest(hub, "dev2", "ssh"); return d != 0 }},
		{admin.Fault{Kind: admin.KindRejectStream},
			func() bool { _, rej := hf.StreamRequest(hub, dev, "ssh"); return rej },
			func() bool { _, rej := hf.StreamRequest(hub, "dev2", "ssh"); return rej }},
		{admin.Fault{Kind: admin.KindCutStream, AfterBytes: 100},
			func() bool { n, ok := rf.Cut(spec); return ok && n == 100 },
			func() bool { _, ok := rf.Cut(other); return ok }},
		{admin.Fault{Kind: admin.KindStallStream, Side: "service"},
			func() bool { s, ok := rf.Stall(spec); return ok && s == "service" },
			func() bool { _, ok := rf.Stall(other); return ok }},
		{admin.Fault{Kind: admin.KindDelayAck, Delay: admin.Duration(time.Second)},
			func() bool { return hf.AckDelay(hub, dev) == time.Second },
			func() bool { return hf.AckDelay(hub, "dev2") != 0 }},
	}
	if len(tests) != len(admin.Kinds) {
		t.Fatalf("%d kinds, %d tested", len(admin.Kinds), len(tests))
	}
	for _, tt := range tests {
		if tt.on() {
			t.Errorf("%s fires before it is added", tt.fault.Kind)
		}
		f := tt.fault
		f.Hub, f.Device = "HUB-EU.local", dev
		added, err := fs.Add(f)
		if err != nil {
			t.Fatalf("%s: %v", f.Kind, err)
		}
		if !tt.on() {
			t.Errorf("%s does not fire", f.Kind)
		}
		if tt.off() {
			t.Errorf("%s fires for another device or hub", f.Kind)
		}
		fs.Clear(added.ID)
		if tt.on() {
			t.Errorf("%s still fires after Clear", f.Kind)
		}
	}
}
