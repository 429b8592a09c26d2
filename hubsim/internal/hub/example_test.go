package hub_test

import (
	"context"
	"fmt"

	"github.com/porthole-iot/porthole/hubsim/internal/hub"
)

// A Set holds the simulated hubs; each hub has a registry that tests fill
// through the Go API (or the service REST API the Set serves).
func Example() {
	set, err := hub.NewSet(hub.Config{Hubs: []hub.HubConfig{{HostName: "hub1.example.net"}}})
	if err != nil {
		panic(err)
	}
	defer set.Close()
	h, _ := set.Hub("hub1.example.net")
	ctx := context.Background()

	d, err := h.CreateDevice(ctx, hub.Device{DeviceID: "dev1"})
	if err != nil {
		panic(err)
	}
	fmt.Println(d.DeviceID, d.Status, d.Authentication.Type, d.ConnectionState)

	tw, _ := h.UpdateTwin(ctx, "dev1", "", hub.TwinPatch{Desired: map[string]any{"interval": 30}}, "*")
	fmt.Println("desired $version", tw.Properties.Desired["$version"])

	_, err = h.InvokeMethod(ctx, "dev1", "", hub.MethodRequest{MethodName: "reboot"})
	fmt.Println(err)
	// Output:
	// dev1 enabled sas Disconnected
	// desired $version 2
	// hub: device not online: dev1
}
