// Package server is the frame of the hubsim process: it listens with TLS on
// the HTTPS port (HTTP/1.1 only, so WebSocket upgrades work) and on the MQTT
// port, routes HTTPS requests by path to the simulator's components, hands
// MQTT connections to the broker, answers what no component handles in
// Azure's error shape (and records it), and shuts everything down in order.
//
// The components (broker, hub, DPS, streaming relay, admin API) are built
// elsewhere and plugged in through Components, after the listeners are bound
// so they can know the picked ports:
//
//	p, err := server.Prepare(cfg, logger) // keys, CA, listeners
//	comps := server.Components{Broker: b, Hub: h, ...}
//	err = p.Server.Start(comps)
//	defer p.Server.Close()
//
// Routing (first path segment unless noted), PROTOCOL.md §14:
//
//	/healthz                                   server: 200 {"status":"ok"}
//	/$iothub/websocket                         Broker (MQTT over WebSocket)
//	/bridges/…                                 Relay (streaming endpoint)
//	/enrollments… /enrollmentGroups… /registrations…   DPSService
//	/<idScope>/registrations/…  (second segment)       DPSDevice
//	/devices… /twins… /messages… /statistics… /configurations… /jobs…   Hub
//	/hubsim/…                                  Admin (the simulator's own API)
//	anything else                              404 in the hub's error shape, recorded
//
// A route whose component is nil answers 503 in Azure's error shape.
package server
