// Package hub simulates Azure IoT hubs for hubsim: several hubs by host name
// in one process (a Set), each with an identity registry (devices, modules,
// keys, X.509 thumbprints), twins with versions and metadata, direct methods,
// cloud-to-device queues, device-stream requests and a telemetry tap.
//
// A Set plugs into the rest of hubsim in four ways:
//
//   - broker.Personality: the MQTT broker hands it every CONNECT whose
//     username is "<host>/<deviceId>[/<moduleId>]/?api-version=…"; each
//     accepted connection becomes a session that serves the device-side topics
//     ($iothub/twin, $iothub/methods, $iothub/streams, devices/<id>/messages).
//   - RegisterRoutes (and ServeHTTP on its own mux): the hub service REST
//     API (/devices, /twins, /statistics) as Go 1.22 method+path patterns,
//     authenticated with shared access policies.
//   - what hubsim's admin API (package admin) reads and drives: Stats,
//     Counters, ServeEvents (the telemetry tap), SendC2D, Disconnect.
//   - Faults: func-field hooks that make a hub misbehave on purpose.
//   - ident.Hubs: what hubsim's DPS uses to create devices and move twins.
//
// Wire constants live in wire.go with the upstream source each was checked
// against. The package never imports sdk/...: hubsim and porthole's SDK write
// the wire strings independently.
//
// Concurrency: Hub.mu guards the hub state, except what telemetry touches on
// every message: an identity's last activity time is atomic, and the event
// tap's subscribers have their own lock, which publishers share and which
// is never taken with Hub.mu held. Each device connection has at most one
// writer goroutine (sendRun), started when something is queued for it and
// gone when the queues are empty (an idle connection holds no stack), and
// waited for when the broker reports the disconnect or the Set closes. No
// lock is held while calling into the broker.
package hub

import (
	"net/http"

	"github.com/porthole-iot/porthole/hubsim/internal/broker"
	"github.com/porthole-iot/porthole/hubsim/internal/ident"
	"github.com/porthole-iot/porthole/hubsim/internal/relay"
)

// The contracts other hubsim packages code against.
var (
	_ broker.Personality = (*Set)(nil)
	_ broker.Session     = (*session)(nil)
	_ ident.Hubs         = (*Set)(nil)
	_ http.Handler       = (*Set)(nil)
	_ StreamRelay        = (*relay.Relay)(nil)
)
