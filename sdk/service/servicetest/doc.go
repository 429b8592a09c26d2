// Package servicetest provides a fake device for testing service-side code
// (sdk/service, the porthole CLI) against hubsim or a real hub: it connects
// to the hub over MQTT with a symmetric key, answers stream requests and
// direct methods, and serves accepted streams.
//
//	dev, err := servicetest.StartDevice(ctx, servicetest.DeviceConfig{
//		HubHost: "hub-eu.local", DeviceID: "dev1", Key: key,
//		TLSConfig: sim.TLSConfig(), DialContext: sim.DialContext,
//	})
//	defer dev.Close()
//
// It is deliberately minimal (no reconnect, no twin) and is not the device
// agent; it exists so service-side tests need no agent.
package servicetest
