package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/service"
)

// healthTwins are twins as the hub returns them, with the agent's health
// report in its variants: full, an error since the connection, offline,
// none, nulls, malformed, and a newer agent's (unknown fields, fractional
// seconds).
var healthTwins = []struct{ name, twin string }{
	{"full", `{"deviceId":"dev1","status":"enabled","connectionState":"Connected","lastActivityTime":"2026-01-01T11:59:00Z",
		"properties":{"reported":{"porthole":{"version":"v1.4.0","started":"2026-01-01T10:00:00Z",
		"hub":{"transport":"mqtt","connected":true,"since":"2026-01-01T10:00:03Z"},
		"provisioning":{"hub":"hub-eu.local","deviceId":"dev1","substatus":"initialAssignment","lastRegistration":"2025-12-30T08:00:00Z"},
		"streams":{"open":2,"accepted":12,"rejected":3},
		"lastRejection":{"stream":"web","reason":"target unreachable","at":"2026-01-01T11:30:00Z"},
		"lastError":{"message":"dps: register: status 503 Service Unavailable","at":"2026-01-01T09:59:58Z"},
		"configReload":{"at":"2026-01-01T10:10:00Z","result":"applied","detail":"streams.targets"}}}}}`},
	{"error since connected", `{"deviceId":"dev2","connectionState":"Connected","lastActivityTime":"2026-01-01T11:59:00Z",
		"properties":{"reported":{"porthole":{"version":"v1.4.0","started":"2026-01-01T10:00:00Z",
		"hub":{"transport":"mqtt-ws","connected":true,"since":"2026-01-01T10:00:03Z"},
		"streams":{"open":0,"accepted":0,"rejected":0},"lastRejection":null,
		"lastError":{"message":"could not cache the assignment: no space left on device","at":"2026-01-01T11:00:00Z"}}}}}`},
	{"offline, disabled", `{"deviceId":"dev3","status":"disabled","connectionState":"Disconnected","lastActivityTime":"2025-12-31T23:00:00Z",
		"properties":{"reported":{"porthole":{"version":"v1.3.9","started":"2025-12-31T20:00:00Z",
		"hub":{"transport":"mqtt","connected":true,"since":"2025-12-31T20:00:01Z"},"streams":{"open":1,"accepted":4,"rejected":0}}}}}`},
	{"no report", `{"deviceId":"plain","connectionState":"Disconnected","properties":{"reported":{"other":1}}}`},
	{"nulls", `{"deviceId":"dev4","connectionState":"Connected",
		"properties":{"reported":{"porthole":{"version":"v1.4.0","started":null,"hub":{"transport":"mqtt","connected":true,"since":null},
		"streams":{"open":0,"accepted":0,"rejected":0},"lastRejection":{"stream":"ssh","reason":"too many open streams","at":null},
		"lastError":{"message":"hub: connect: refused","at":null},"configReload":null}}}}`},
	{"malformed", `{"deviceId":"dev5","connectionState":"Connected",
		"properties":{"reported":{"porthole":{"version":"v1.4.0","streams":{"open":"two"}}}}}`},
	{"newer agent", `{"deviceId":"dev6","connectionState":"Connected","lastActivityTime":"2026-01-01T11:59:00.123Z",
		"properties":{"reported":{"porthole":{"version":"v2.0.0","started":"2026-01-01T11:00:00.5Z","future":{"x":1},
		"hub":{"transport":"mqtt","connected":true,"since":"2026-01-01T11:00:01.25+01:00","extra":true},
		"streams":{"open":1,"accepted":1,"rejected":0,"mux":{"connections":3}},
		"lastError":{"message":"old","at":"2026-01-01T10:30:00.999Z","code":7}}}}}`},
}

// renderHealth is everything the CLI prints from a twin's health report:
// the devices row (table and JSON) and the status (table and JSON).
func renderHealth(t *testing.T, twin string) string {
	t.Helper()
	var tw service.Twin
	if err := json.Unmarshal([]byte(twin), &tw); err != nil {
		t.Fatal(err)
	}
	hub := hubCred{name: "hub-eu", host: "hub-eu.local"}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var b strings.Builder
	row := deviceRowOf(&tw, hub)
	if err := writeDevicesTable(&b, []deviceRow{row}); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(&b, row); err != nil {
		t.Fatal(err)
	}
	st := statusOf(&tw, target{hub: hub, via: "DPS"}, &env{now: func() time.Time { return now }})
	if err := writeStatusTable(&b, st); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(&b, st); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestHealthOutputPinned pins, byte for byte, what "porthole devices" and
// "porthole status" print for each kind of health report.
func TestHealthOutputPinned(t *testing.T) {
	for _, tc := range healthTwins {
		got := renderHealth(t, tc.twin)
		if want := healthGolden[tc.name]; got != want {
			t.Errorf("%s: output changed:\n%s\nwant:\n%s", tc.name, got, want)
		}
	}
}

var healthGolden = map[string]string{
	"full": `DEVICE  HUB     STATE      LAST ACTIVITY         AGENT   HEALTH
dev1    hub-eu  connected  2026-01-01 11:59:00Z  v1.4.0  ok
{
  "deviceId": "dev1",
  "hub": "hub-eu",
  "hubHost": "hub-eu.local",
  "status": "enabled",
  "connectionState": "Connected",
  "lastActivityTime": "2026-01-01T11:59:00Z",
  "agentVersion": "v1.4.0",
  "health": "ok"
}
device:         dev1
hub:            hub-eu (hub-eu.local, found via DPS)
online:         yes (last activity 2026-01-01 11:59:00Z)
agent version:  v1.4.0
uptime:         2h0m0s (started 2026-01-01 10:00:00Z)
streams:        2 open (12 accepted, 3 rejected since start)
last rejection: stream "web" at 2026-01-01 11:30:00Z: target unreachable
last error:     2026-01-01 09:59:58Z: dps: register: status 503 Service Unavailable
health:         ok
{
  "deviceId": "dev1",
  "hub": "hub-eu",
  "hubHost": "hub-eu.local",
  "foundVia": "DPS",
  "online": true,
  "connectionState": "Connected",
  "lastActivityTime": "2026-01-01T11:59:00Z",
  "agentVersion": "v1.4.0",
  "agentStarted": "2026-01-01T10:00:00Z",
  "uptimeSeconds": 7200,
  "transport": "mqtt",
  "openStreams": 2,
  "streamsAccepted": 12,
  "streamsRejected": 3,
  "lastRejection": {
    "stream": "web",
    "reason": "target unreachable",
    "at": "2026-01-01T11:30:00Z"
  },
  "lastError": {
    "message": "dps: register: status 503 Service Unavailable",
    "at": "2026-01-01T09:59:58Z"
  },
  "health": "ok"
}
`,
	"error since connected": `DEVICE  HUB     STATE      LAST ACTIVITY         AGENT   HEALTH
dev2    hub-eu  connected  2026-01-01 11:59:00Z  v1.4.0  error: could not cache the assignment: no space left on device
{
  "deviceId": "dev2",
  "hub": "hub-eu",
  "hubHost": "hub-eu.local",
  "connectionState": "Connected",
  "lastActivityTime": "2026-01-01T11:59:00Z",
  "agentVersion": "v1.4.0",
  "health": "error: could not cache the assignment: no space left on device"
}
device:         dev2
hub:            hub-eu (hub-eu.local, found via DPS)
online:         yes (last activity 2026-01-01 11:59:00Z)
agent version:  v1.4.0
uptime:         2h0m0s (started 2026-01-01 10:00:00Z)
streams:        0 open (0 accepted, 0 rejected since start)
last rejection: none
last error:     2026-01-01 11:00:00Z: could not cache the assignment: no space left on device
health:         error: could not cache the assignment: no space left on device
{
  "deviceId": "dev2",
  "hub": "hub-eu",
  "hubHost": "hub-eu.local",
  "foundVia": "DPS",
  "online": true,
  "connectionState": "Connected",
  "lastActivityTime": "2026-01-01T11:59:00Z",
  "agentVersion": "v1.4.0",
  "agentStarted": "2026-01-01T10:00:00Z",
  "uptimeSeconds": 7200,
  "transport": "mqtt-ws",
  "openStreams": 0,
  "lastError": {
    "message": "could not cache the assignment: no space left on device",
    "at": "2026-01-01T11:00:00Z"
  },
  "health": "error: could not cache the assignment: no space left on device"
}
`,
	"offline, disabled": `DEVICE  HUB     STATE                    LAST ACTIVITY         AGENT   HEALTH
dev3    hub-eu  disconnected (disabled)  2025-12-31 23:00:00Z  v1.3.9  stale
{
  "deviceId": "dev3",
  "hub": "hub-eu",
  "hubHost": "hub-eu.local",
  "status": "disabled",
  "connectionState": "Disconnected",
  "lastActivityTime": "2025-12-31T23:00:00Z",
  "agentVersion": "v1.3.9",
  "health": "stale"
}
device:         dev3
hub:            hub-eu (hub-eu.local, found via DPS)
online:         no (last activity 2025-12-31 23:00:00Z)
agent version:  v1.3.9
uptime:         - (offline; last started 2025-12-31 20:00:00Z)
streams:        1 open (4 accepted, 0 rejected since start)
last rejection: none
last error:     none
health:         stale
{
  "deviceId": "dev3",
  "hub": "hub-eu",
  "hubHost": "hub-eu.local",
  "foundVia": "DPS",
  "online": false,
  "connectionState": "Disconnected",
  "lastActivityTime": "2025-12-31T23:00:00Z",
  "agentVersion": "v1.3.9",
  "agentStarted": "2025-12-31T20:00:00Z",
  "transport": "mqtt",
  "openStreams": 1,
  "streamsAccepted": 4,
  "health": "stale"
}
`,
	"no report": `DEVICE  HUB     STATE         LAST ACTIVITY  AGENT  HEALTH
plain   hub-eu  disconnected  -              -      no report
{
  "deviceId": "plain",
  "hub": "hub-eu",
  "hubHost": "hub-eu.local",
  "connectionState": "Disconnected",
  "health": "no report"
}
device:         plain
hub:            hub-eu (hub-eu.local, found via DPS)
online:         no (last activity -)
agent version:  -
uptime:         -
streams:        -
last rejection: none
last error:     none
health:         no report
{
  "deviceId": "plain",
  "hub": "hub-eu",
  "hubHost": "hub-eu.local",
  "foundVia": "DPS",
  "online": false,
  "connectionState": "Disconnected",
  "health": "no report"
}
`,
	"nulls": `DEVICE  HUB     STATE      LAST ACTIVITY  AGENT   HEALTH
dev4    hub-eu  connected  -              v1.4.0  ok
{
  "deviceId": "dev4",
  "hub": "hub-eu",
  "hubHost": "hub-eu.local",
  "connectionState": "Connected",
  "agentVersion": "v1.4.0",
  "health": "ok"
}
device:         dev4
hub:            hub-eu (hub-eu.local, found via DPS)
online:         yes (last activity -)
agent version:  v1.4.0
uptime:         -
streams:        0 open (0 accepted, 0 rejected since start)
last rejection: stream "ssh" at -: too many open streams
last error:     -: hub: connect: refused
health:         ok
{
  "deviceId": "dev4",
  "hub": "hub-eu",
  "hubHost": "hub-eu.local",
  "foundVia": "DPS",
  "online": true,
  "connectionState": "Connected",
  "agentVersion": "v1.4.0",
  "transport": "mqtt",
  "openStreams": 0,
  "lastRejection": {
    "stream": "ssh",
    "reason": "too many open streams"
  },
  "lastError": {
    "message": "hub: connect: refused"
  },
  "health": "ok"
}
`,
	"malformed": `DEVICE  HUB     STATE      LAST ACTIVITY  AGENT  HEALTH
dev5    hub-eu  connected  -              -      no report
{
  "deviceId": "dev5",
  "hub": "hub-eu",
  "hubHost": "hub-eu.local",
  "connectionState": "Connected",
  "health": "no report"
}
device:         dev5
hub:            hub-eu (hub-eu.local, found via DPS)
online:         yes (last activity -)
agent version:  -
uptime:         -
streams:        -
last rejection: none
last error:     none
health:         no report
{
  "deviceId": "dev5",
  "hub": "hub-eu",
  "hubHost": "hub-eu.local",
  "foundVia": "DPS",
  "online": true,
  "connectionState": "Connected",
  "health": "no report"
}
`,
	"newer agent": `DEVICE  HUB     STATE      LAST ACTIVITY         AGENT   HEALTH
dev6    hub-eu  connected  2026-01-01 11:59:00Z  v2.0.0  error: old
{
  "deviceId": "dev6",
  "hub": "hub-eu",
  "hubHost": "hub-eu.local",
  "connectionState": "Connected",
  "lastActivityTime": "2026-01-01T11:59:00.123Z",
  "agentVersion": "v2.0.0",
  "health": "error: old"
}
device:         dev6
hub:            hub-eu (hub-eu.local, found via DPS)
online:         yes (last activity 2026-01-01 11:59:00Z)
agent version:  v2.0.0
uptime:         59m59s (started 2026-01-01 11:00:00Z)
streams:        1 open (1 accepted, 0 rejected since start)
last rejection: none
last error:     2026-01-01 10:30:00Z: old
health:         error: old
{
  "deviceId": "dev6",
  "hub": "hub-eu",
  "hubHost": "hub-eu.local",
  "foundVia": "DPS",
  "online": true,
  "connectionState": "Connected",
  "lastActivityTime": "2026-01-01T11:59:00.123Z",
  "agentVersion": "v2.0.0",
  "agentStarted": "2026-01-01T11:00:00.5Z",
  "uptimeSeconds": 3599,
  "transport": "mqtt",
  "openStreams": 1,
  "streamsAccepted": 1,
  "lastError": {
    "message": "old",
    "at": "2026-01-01T10:30:00.999Z"
  },
  "health": "error: old"
}
`,
}
