package hub

import "sync/atomic"

// Counters are a hub's running totals since it started (hubsim's /metrics
// and GET /hubsim/hubs read them).
type Counters struct {
	Connects    int64 `json:"connects"`    // accepted MQTT connections
	Disconnects int64 `json:"disconnects"` // ended MQTT connections
	MessagesIn  int64 `json:"messagesIn"`  // device-to-cloud telemetry messages accepted
	MessagesOut int64 `json:"messagesOut"` // PUBLISHes sent to devices (C2D, methods, twin, streams)
	TwinGets    int64 `json:"twinGets"`    // twin reads (device GET and service GET)
	TwinPatches int64 `json:"twinPatches"` // reported patches (device) and desired/tag updates (service)
	MethodCalls int64 `json:"methodCalls"` // direct method invocations
	C2DSent     int64 `json:"c2dSent"`     // cloud-to-device messages queued
	C2DDone     int64 `json:"c2dDelivered"`
	Throttled   int64 `json:"throttled"` // 429 answers of the service REST API
}

// counters is Counters, updated without the hub lock.
type counters struct {
	connects, disconnects, messagesIn, messagesOut atomic.Int64
	twinGets, twinPatches, methodCalls             atomic.Int64
	c2dSent, c2dDone, throttled                    atomic.Int64
}

// Counters returns the hub's totals.
func (h *Hub) Counters() Counters {
	c := &h.counters
	return Counters{
		Connects: c.connects.Load(), Disconnects: c.disconnects.Load(),
		MessagesIn: c.messagesIn.Load(), MessagesOut: c.messagesOut.Load(),
		TwinGets: c.twinGets.Load(), TwinPatches: c.twinPatches.Load(),
		MethodCalls: c.methodCalls.Load(), C2DSent: c.c2dSent.Load(), C2DDone: c.c2dDone.Load(),
		Throttled: c.throttled.Load(),
	}
}
