// Package health defines the porthole agent's health report: what the
// agent writes in its device twin's reported properties, under the
// "porthole" property, and what the operator CLI and fleet tooling read
// from there. It is the one definition of that JSON shape; both sides
// import it (the agent through sdk, the CLI directly).
//
// The shape (every field is always present; a null clears what no longer
// applies, as a twin patch does):
//
//	"porthole": {
//	  "version": "v1.4.0",
//	  "started": "2025-03-01T12:00:00Z",
//	  "hub": {"transport": "mqtt", "connected": true, "since": "2025-03-01T12:00:03Z"},
//	  "provisioning": {"hub": "contoso.azure-devices.net", "deviceId": "sn-0042",
//	                   "substatus": "initialAssignment", "lastRegistration": "2025-02-27T08:14:00Z"},
//	  "streams": {"open": 1, "accepted": 12, "rejected": 2},
//	  "lastRejection": {"stream": "web", "reason": "unknown stream", "at": "2025-03-01T12:30:00Z"},
//	  "lastError": {"message": "dps: register: status 503 Service Unavailable", "at": "2025-03-01T11:59:58Z"},
//	  "configReload": {"at": "2025-03-01T12:10:00Z", "result": "applied", "detail": "streams.targets"}
//	}
//
// Times are RFC 3339 in UTC; a zero time is written as null. The agent
// coalesces changes and patches at most once per health.twin_interval
// (30 s by default): counters are batched, so the twin may lag the device
// by up to that interval.
package health
