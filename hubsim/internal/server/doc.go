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
// Routing is one http.ServeMux with Go 1.22 method+path patterns.
// Components that implement RouteRegistrar (hub.Set, dps.HTTPAPI,
// admin.API) put their own patterns on it, each declaring the SAS right
// it requires; plain handlers are mounted under their prefixes. DPS's
// device routes carry each ID scope as a literal first segment (a wildcard
// there would conflict with the service and hub routes; see router). Paths
// ServeMux would redirect (empty, "." or ".." segments) and paths no
// pattern names (an unknown ID scope, collection names in another case) go
// through Classify to the component, which answers in its own error shape;
// the hub and admin APIs ignore trailing slashes, DPS's fallback rewrites
// the spellings DPS accepts. By first path segment unless noted
// (PROTOCOL.md §14):
//
//	/healthz                                   server: 200 {"status":"ok"}
//	/$iothub/websocket                         Broker (MQTT over WebSocket)
//	/bridges/…                                 Relay (streaming endpoint)
//	/enrollments… /enrollmentGroups… /registrations…   DPS (service API)
//	/<idScope>/registrations/…  (second segment)       DPS (device API)
//	/devices… /twins… /messages… /statistics… /configurations… /jobs…   Hub
//	/hubsim/… /metrics                         Admin (the simulator's own API)
//	anything else                              404 in the hub's error shape, recorded
//
// A route whose component is nil answers 503 in Azure's error shape.
package server
