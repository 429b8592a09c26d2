package hub

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/ident"
)

func TestRESTDevices(t *testing.T) {
	e := newEnv(t)
	c := e.rest("hub1.example.net", "iothubowner")

	// Create: PUT without If-Match, as azure-iothub Registry.create; keys generated.
	r := c.do("PUT", "/devices/dev%3A1?api-version=2021-04-12", map[string]any{"deviceId": "dev:1"}, nil)
	if r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	dev := r.json(t)
	auth := dev["authentication"].(map[string]any)
	keys := auth["symmetricKey"].(map[string]any)
	if dev["deviceId"] != "dev:1" || dev["status"] != "enabled" || auth["type"] != "sas" || keys["primaryKey"] == "" || dev["connectionState"] != "Disconnected" {
		t.Fatalf("created %s", r.body)
	}
	etag := dev["etag"].(string)
	if r.header.Get("ETag") != `"`+etag+`"` {
		t.Errorf("ETag header %q, body etag %q", r.header.Get("ETag"), etag)
	}
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
	}
	wantAzureError(t, c.do("PUT", "/devices/dev%3A1", map[string]any{"deviceId": "dev:1"}, nil), 409, "DeviceAlreadyExists")
	wantAzureError(t, c.do("PUT", "/devices/x", map[string]any{"deviceId": "y"}, nil), 400, "ArgumentInvalid")
	wantAzureError(t, c.do("PUT", "/devices/x", map[string]any{"authentication": map[string]any{"type": "sas", "symmetricKey": map[string]any{"primaryKey": "c2hvcnQ="}}}, nil), 400, "ArgumentInvalid")
	wantAzureError(t, c.do("PUT", "/devices/x", "{", nil), 400, "ArgumentInvalid")

	// Get.
	r = c.do("GET", "/devices/dev%3A1", nil, nil)
	if r.status != 200 || r.json(t)["etag"] != etag {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	wantAzureError(t, c.do("GET", "/devices/ghost", nil, nil), 404, "DeviceNotFound")

	// Update: If-Match etag; a stale etag is 412; "*" always matches.
	dev["status"] = "disabled"
	wantAzureError(t, c.do("PUT", "/devices/dev%3A1", dev, map[string]string{"If-Match": `"stale"`}), 412, "PreconditionFailed")
	r = c.do("PUT", "/devices/dev%3A1", dev, map[string]string{"If-Match": `"` + etag + `"`})
	if r.status != 200 || r.json(t)["status"] != "disabled" || r.json(t)["etag"] == etag {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	if r := c.do("PUT", "/devices/dev%3A1", dev, map[string]string{"If-Match": `"*"`}); r.status != 200 {
		t.Fatalf("update *: %d %s", r.status, r.body)
	}
	wantAzureError(t, c.do("PUT", "/devices/ghost", map[string]any{}, map[string]string{"If-Match": `"*"`}), 404, "DeviceNotFound")

	// X.509 device; list.
	tp := strings.Repeat("AB", 20)
	r = c.do("PUT", "/devices/x509dev", map[string]any{"authentication": map[string]any{"x509Thumbprint": map[string]any{"primaryThumbprint": tp}}}, nil)
	if r.status != 200 || r.json(t)["authentication"].(map[string]any)["type"] != "selfSigned" {
		t.Fatalf("x509 create: %d %s", r.status, r.body)
	}
	r = c.do("GET", "/devices", nil, nil)
	var list []Device
	if err := json.Unmarshal(r.body, &list); err != nil || len(list) != 2 || list[0].DeviceID != "dev:1" || list[1].DeviceID != "x509dev" {
		t.Fatalf("list %s", r.body)
	}
	r = c.do("GET", "/statistics/devices", nil, nil)
	if string(r.body) != `{"disabledDeviceCount":1,"enabledDeviceCount":1,"totalDeviceCount":2}` {
		t.Errorf("statistics %s", r.body)
	}

	// Modules.
	r = c.do("PUT", "/devices/x509dev/modules/m1", map[string]any{}, nil)
	if r.status != 200 || r.json(t)["moduleId"] != "m1" {
		t.Fatalf("module create %d %s", r.status, r.body)
	}
	wantAzureError(t, c.do("PUT", "/devices/x509dev/modules/m1", map[string]any{}, nil), 409, "ModuleAlreadyExistsOnDevice")
	wantAzureError(t, c.do("GET", "/devices/x509dev/modules/m2", nil, nil), 404, "ModuleNotFound")
	if r := c.do("GET", "/devices/x509dev/modules", nil, nil); r.status != 200 || !strings.Contains(string(r.body), `"moduleId":"m1"`) {
		t.Fatalf("module list %s", r.body)
	}
	if r := c.do("DELETE", "/devices/x509dev/modules/m1", nil, map[string]string{"If-Match": `"*"`}); r.status != 204 {
		t.Fatalf("module delete %d", r.status)
	}

	// Delete.
	if r := c.do("DELETE", "/devices/dev%3A1", nil, map[string]string{"If-Match": `"*"`}); r.status != 204 {
		t.Fatalf("delete %d %s", r.status, r.body)
	}
	wantAzureError(t, c.do("DELETE", "/devices/dev%3A1", nil, nil), 404, "DeviceNotFound")

	// Unknown routes and verbs.
	wantAzureError(t, c.do("GET", "/jobs/v2/query", nil, nil), 404, "IotHubNotFound")
	wantAzureError(t, c.do("POST", "/devices/x509dev", nil, nil), 405, "InvalidOperation")
	if len(e.set.Unhandled()) == 0 {
		t.Error("unknown route not recorded")
	}
}

func TestRESTTwins(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	key := e.device(h, "dev1")
	d := e.connectDevice(h, "dev1", key)
	d.sub("$iothub/twin/PATCH/properties/desired/#")
	c := e.rest("hub1.example.net", "service")

	r := c.do("GET", "/twins/dev1?api-version=2021-04-12", nil, nil)
	tw := r.json(t)
	if r.status != 200 || tw["connectionState"] != "Connected" || tw["version"] != float64(1) || tw["authenticationType"] != "sas" {
		t.Fatalf("get twin %d %s", r.status, r.body)
	}
	etag := tw["etag"].(string)
	patch := map[string]any{"tags": map[string]any{"site": "a"}, "properties": map[string]any{"desired": map[string]any{"n": 1}}}
	wantAzureError(t, c.do("PATCH", "/twins/dev1", patch, map[string]string{"If-Match": `"AAAAAAAAAAA="`}), 412, "PreconditionFailed")
	r = c.do("PATCH", "/twins/dev1", patch, map[string]string{"If-Match": `"` + etag + `"`})
	tw = r.json(t)
	if r.status != 200 || tw["tags"].(map[string]any)["site"] != "a" || tw["properties"].(map[string]any)["desired"].(map[string]any)["n"] != float64(1) {
		t.Fatalf("patch twin %d %s", r.status, r.body)
	}
	if m := d.next(); m.topic != "$iothub/twin/PATCH/properties/desired/?$version=2" {
		t.Fatalf("push %q", m.topic)
	}
	// PUT replaces: "n" disappears, the device is told with a null.
	r = c.do("PUT", "/twins/dev1", map[string]any{"properties": map[string]any{"desired": map[string]any{"m": "x"}}}, nil)
	if r.status != 200 {
		t.Fatalf("replace %d %s", r.status, r.body)
	}
	if m := d.next(); string(m.payload) != `{"$version":3,"m":"x","n":null}` {
		t.Fatalf("replace push %s", m.payload)
	}
	wantAzureError(t, c.do("PATCH", "/twins/dev1", map[string]any{"properties": map[string]any{"reported": map[string]any{"x": 1}}}, nil), 400, "ArgumentInvalid")
	wantAzureError(t, c.do("PATCH", "/twins/dev1", "nope", nil), 400, "IotHubFormatError")
	wantAzureError(t, c.do("GET", "/twins/ghost", nil, nil), 404, "DeviceNotFound")

	// Query, paged.
	for _, id := range []string{"dev2", "dev3"} {
		e.device(h, id)
	}
	q := map[string]string{"query": "SELECT * FROM devices"}
	r = c.do("POST", "/devices/query", q, map[string]string{"x-ms-max-item-count": "2"})
	var page []Twin
	if err := json.Unmarshal(r.body, &page); err != nil || len(page) != 2 || page[0].DeviceID != "dev1" {
		t.Fatalf("query page 1 %s", r.body)
	}
	cont := r.header.Get("x-ms-continuation")
	if cont == "" || r.header.Get("x-ms-item-type") != "twin" {
		t.Fatalf("headers %v", r.header)
	}
	r = c.do("POST", "/devices/query", q, map[string]string{"x-ms-max-item-count": "2", "x-ms-continuation": cont})
	if err := json.Unmarshal(r.body, &page); err != nil || len(page) != 1 || page[0].DeviceID != "dev3" || r.header.Get("x-ms-continuation") != "" {
		t.Fatalf("query page 2 %s %v", r.body, r.header)
	}
}

// TestRESTQuery: POST /devices/query runs the query language over the
// hub's twins, through the store's twin_docs and through the in-memory
// snapshot querier of a hub without a store.
func TestRESTQuery(t *testing.T) {
	t.Run("store", func(t *testing.T) {
		st := openStore(t, filepath.Join(t.TempDir(), "hubsim.db"))
		e := newEnvWith(t, withStore(st))
		if _, ok := e.set.cfg.Twins.(SQLTwins); !ok {
			t.Fatalf("querier %T, want SQLTwins", e.set.cfg.Twins)
		}
		testRESTQuery(t, e)
	})
	t.Run("snapshot", func(t *testing.T) {
		e := newEnv(t)
		if _, ok := e.set.cfg.Twins.(snapshotTwins); !ok {
			t.Fatalf("querier %T, want snapshotTwins", e.set.cfg.Twins)
		}
		testRESTQuery(t, e)
	})
}

func testRESTQuery(t *testing.T, e *env) {
	h := e.hub("hub1.example.net")
	c := e.rest("hub1.example.net", "service")
	ctx := context.Background()
	for i, id := range []string{"dev1", "dev2", "dev3"} {
		e.device(h, id)
		site := []string{"north", "north", "south"}[i]
		if _, err := h.UpdateTwin(ctx, id, "", TwinPatch{Tags: map[string]any{"site": site, "n": i}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.CreateModule(ctx, Module{DeviceID: "dev1", ModuleID: "m1"}); err != nil {
		t.Fatal(err)
	}
	post := func(q string, hdr map[string]string) resp {
		return c.do("POST", "/devices/query", map[string]string{"query": q}, hdr)
	}
	tests := []struct {
		q        string
		want     string
		itemType string
	}{
		{"SELECT deviceId FROM devices WHERE tags.site = 'north'", `[{"deviceId":"dev1"},{"deviceId":"dev2"}]`, "raw"},
		{"SELECT deviceId FROM devices WHERE tags.n >= 1 AND NOT STARTSWITH(tags.site, 'n')", `[{"deviceId":"dev3"}]`, "raw"},
		{"SELECT deviceId, moduleId FROM devices.modules", `[{"deviceId":"dev1","moduleId":"m1"}]`, "raw"},
		{"SELECT tags.site AS site, COUNT() AS n FROM devices GROUP BY tags.site", `[{"site":"north","n":2},{"site":"south","n":1}]`, "raw"},
		{"SELECT deviceId FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected' AND deviceId IN ['dev2']", `[{"deviceId":"dev2"}]`, "raw"},
	}
	for _, tt := range tests {
		r := post(tt.q, nil)
		if r.status != 200 || string(r.body) != tt.want || r.header.Get("x-ms-item-type") != tt.itemType {
			t.Errorf("%s: %d %s (%s), want %s (%s)", tt.q, r.status, r.body, r.header.Get("x-ms-item-type"), tt.want, tt.itemType)
		}
	}
	// SELECT * returns whole twins, as GET /twins does.
	r := post("SELECT * FROM devices WHERE deviceId = 'dev3'", nil)
	var twins []Twin
	if err := json.Unmarshal(r.body, &twins); err != nil || len(twins) != 1 || twins[0].Tags["site"] != "south" || r.header.Get("x-ms-item-type") != "twin" {
		t.Fatalf("select * %s", r.body)
	}
	got, err := h.GetTwin(ctx, "dev3", "")
	if err != nil || got.ETag != twins[0].ETag || got.Version != twins[0].Version {
		t.Fatalf("query twin %+v, GET twin %+v", twins[0], got)
	}

	before := len(e.set.Unhandled())
	// Unsupported syntax: 400 naming it, recorded as unhandled.
	r = post("SELECT * FROM devices.jobs", nil)
	wantAzureError(t, r, 400, "ArgumentInvalid")
	if !strings.Contains(string(r.body), "devices.jobs") || !strings.Contains(string(r.body), "unsupported") {
		t.Errorf("unsupported query body %s", r.body)
	}
	if u := e.set.Unhandled(); len(u) != before+1 || u[len(u)-1].What != "query" {
		t.Errorf("unsupported query not recorded: %+v", u)
	}
	// Invalid text, bad tokens and page sizes: 400, not recorded.
	wantAzureError(t, post("SELECT * FROM devices WHERE", nil), 400, "ArgumentInvalid")
	wantAzureError(t, post("SELECT * FROM devices", map[string]string{"x-ms-continuation": "bogus"}), 400, "ArgumentInvalid")
	wantAzureError(t, post("SELECT * FROM devices", map[string]string{"x-ms-max-item-count": "-1"}), 400, "ArgumentInvalid")
	if r := post("SELECT * FROM devices", map[string]string{"x-ms-max-item-count": "0"}); r.status != 200 || r.header.Get("x-ms-continuation") != "" {
		t.Errorf("page size 0 (the default): %d %s", r.status, r.body)
	}
	wantAzureError(t, post("SELECT * FROM devices", map[string]string{"x-ms-max-item-count": "many"}), 400, "ArgumentInvalid")
	if u := e.set.Unhandled(); len(u) != before+1 {
		t.Errorf("invalid queries recorded as unhandled: %+v", u[before+1:])
	}
}

func TestRESTMethods(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	key := e.device(h, "dev1")
	c := e.rest("hub1.example.net", "service")

	r := c.do("POST", "/twins/dev1/methods", map[string]any{"methodName": "m", "payload": nil, "responseTimeoutInSeconds": 5}, nil)
	wantAzureError(t, r, 404, "DeviceNotOnline")

	d := e.connectDevice(h, "dev1", key)
	d.sub("$iothub/methods/POST/#")
	done := make(chan resp, 1)
	go func() {
		done <- c.do("POST", "/twins/dev1/methods", map[string]any{"methodName": "get", "payload": map[string]any{"a": 1}, "responseTimeoutInSeconds": 5}, nil)
	}()
	m := d.next()
	if string(m.payload) != `{"a":1}` {
		t.Fatalf("payload %s", m.payload)
	}
	_ = d.pub("$iothub/methods/res/200/?$rid="+strings.TrimPrefix(m.topic, "$iothub/methods/POST/get/?$rid="), `{"v":"1.0"}`)
	r = <-done
	if r.status != 200 || string(r.body) != `{"status":200,"payload":{"v":"1.0"}}` {
		t.Fatalf("invoke %d %s", r.status, r.body)
	}

	go func() {
		done <- c.do("POST", "/twins/dev1/methods", map[string]any{"methodName": "slow", "responseTimeoutInSeconds": 5}, nil)
	}()
	d.next()
	e.clock.waitTimers(t, 2) // token expiry + method timeout
	e.clock.Advance(5 * time.Second)
	wantAzureError(t, <-done, 504, "GatewayTimeout")
}

func TestRESTStreams(t *testing.T) {
	var mu sync.Mutex
	var log []StreamEvent
	e := newEnvWith(t, func(c *Config) {
		c.Hubs[0].Name = "lab-hub"
		c.StreamLog = func(ev StreamEvent) {
			mu.Lock()
			defer mu.Unlock()
			log = append(log, ev)
		}
	})
	h := e.hub("hub1.example.net")
	key := e.device(h, "dev1")
	c := e.rest("hub1.example.net", "service")

	wantAzureError(t, c.do("POST", "/twins/dev1/streams/ssh", nil, nil), 404, "DeviceNotOnline")
	wantAzureError(t, c.do("POST", "/twins/dev1/streams/a/b", nil, nil), 400, "ArgumentInvalid")
	wantAzureError(t, c.do("POST", "/twins/dev1/streams/a%2Fb", nil, nil), 400, "ArgumentInvalid")

	d := e.connectDevice(h, "dev1", key)
	d.sub("$iothub/streams/POST/#", "$iothub/streams/res/#")
	hdr := map[string]string{"iothub-streaming-connect-timeout-in-seconds": "20", "iothub-streaming-response-timeout-in-seconds": "7"}
	done := make(chan resp, 1)
	request := func() published {
		go func() { done <- c.do("POST", "/twins/dev1/streams/ssh?api-version=2020-09-30", nil, hdr) }()
		return d.next()
	}

	// Accepted.
	m := request()
	wantPrefix := "$iothub/streams/POST/ssh/?$rid="
	rid, rest, _ := strings.Cut(strings.TrimPrefix(m.topic, wantPrefix), "&")
	if !strings.HasPrefix(m.topic, wantPrefix) || rest != "$url=wss%3A%2F%2F127.0.0.1%3A443%2Fbridges%2Fhub1.example.net%2Fdev1%2Fs1&$auth=dtok-s1" || len(m.payload) != 0 || m.qos != 0 {
		t.Fatalf("stream request %q", m.topic)
	}
	_ = d.pub("$iothub/streams/res/200/?$rid="+rid, "")
	r := <-done
	if r.status != 200 || r.header.Get("iothub-streaming-is-accepted") != "True" ||
		r.header.Get("iothub-streaming-url") != "wss://127.0.0.1:443/bridges/hub1.example.net/dev1/s1" ||
		r.header.Get("iothub-streaming-auth-token") != "stok-s1" {
		t.Fatalf("accepted: %d %v", r.status, r.header)
	}
	if spec := e.relay.created[0]; spec.HandshakeTimeout != 20*time.Second || spec.Name != "ssh" || spec.Hub != "hub1.example.net" ||
		spec.HubName != "lab-hub" || spec.Policy != "service" {
		t.Errorf("relay spec %+v", spec)
	}
	// The hub tells the relay directly that the device accepted.
	if got := e.relay.acceptedIDs(); len(got) != 1 || got[0] != "s1" {
		t.Errorf("relay told accepted %v, want [s1]", got)
	}

	// Rejected: False, relay stream cancelled.
	m = request()
	rid, _, _ = strings.Cut(strings.TrimPrefix(m.topic, wantPrefix), "&")
	_ = d.pub("$iothub/streams/res/400/?$rid="+rid, "")
	r = <-done
	if r.status != 200 || r.header.Get("iothub-streaming-is-accepted") != "False" || r.header.Get("iothub-streaming-url") != "" {
		t.Fatalf("rejected: %d %v", r.status, r.header)
	}

	// No answer within the response timeout: 504, cancelled.
	request()
	e.clock.waitTimers(t, 2) // token expiry + response timeout
	e.clock.Advance(7 * time.Second)
	wantAzureError(t, <-done, 504, "GatewayTimeout")
	if got := e.relay.cancelled(); len(got) != 2 || got[0] != "s2" || got[1] != "s3" {
		t.Errorf("cancelled %v", got)
	}
	if got := e.relay.acceptedIDs(); len(got) != 1 {
		t.Errorf("relay told accepted %v after a rejection and a timeout, want only [s1]", got)
	}

	// Throttled by the relay.
	e.relay.mu.Lock()
	e.relay.throttle = true
	e.relay.mu.Unlock()
	wantAzureError(t, c.do("POST", "/twins/dev1/streams/ssh", nil, nil), 429, "ThrottlingException")

	var events []string
	mu.Lock()
	defer mu.Unlock()
	for _, ev := range log {
		events = append(events, ev.Event)
	}
	want := "requested offline requested accepted requested rejected requested timeout requested failed"
	if strings.Join(events, " ") != want {
		t.Errorf("stream log %q\nwant %q", strings.Join(events, " "), want)
	}
}

func TestRESTAuth(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	e.device(h, "dev1")
	owner := e.rest("hub1.example.net", "iothubowner")
	read := e.rest("hub1.example.net", "registryRead")
	svc := e.rest("hub1.example.net", "service")

	if r := read.do("GET", "/devices/dev1", nil, nil); r.status != 200 {
		t.Fatalf("registryRead GET: %d", r.status)
	}
	wantAzureError(t, read.do("PUT", "/devices/dev2", map[string]any{}, nil), 401, "IotHubUnauthorizedAccess")
	wantAzureError(t, svc.do("GET", "/devices/dev1", nil, nil), 401, "IotHubUnauthorizedAccess")
	if r := svc.do("GET", "/twins/dev1", nil, nil); r.status != 200 {
		t.Fatalf("service GET twin: %d", r.status)
	}
	wantAzureError(t, read.do("POST", "/twins/dev1/methods", map[string]any{"methodName": "m"}, nil), 401, "IotHubUnauthorizedAccess")

	none := *owner
	none.token = ""
	wantAzureError(t, none.do("GET", "/devices/dev1", nil, nil), 401, "IotHubUnauthorizedAccess")
	p, _ := h.Policy("iothubowner")
	expired := *owner
	expired.token = sign("hub1.example.net", p.PrimaryKey, "iothubowner", t0.Add(-time.Minute), false)
	wantAzureError(t, expired.do("GET", "/devices/dev1", nil, nil), 401, "IotHubUnauthorizedAccess")
	forged := *owner
	forged.token = sign("hub1.example.net", p.SecondaryKey+"", "service", t0.Add(time.Hour), false) // wrong policy key
	wantAzureError(t, forged.do("GET", "/twins/dev1", nil, nil), 401, "IotHubUnauthorizedAccess")
	otherHub := *owner
	otherHub.token = sign("hub9.example.net", p.PrimaryKey, "iothubowner", t0.Add(time.Hour), false)
	wantAzureError(t, otherHub.do("GET", "/devices/dev1", nil, nil), 401, "IotHubUnauthorizedAccess")
}

func TestSeveralHubs(t *testing.T) {
	e := newEnv(t, "hub-a.example.net", "hub-b.example.net")
	a, b := e.hub("hub-a.example.net"), e.hub("HUB-B.example.net")
	keyA := e.device(a, "dev1")
	ca := e.rest("hub-a.example.net", "iothubowner")
	cb := e.rest("hub-b.example.net", "iothubowner")
	if r := ca.do("GET", "/devices/dev1", nil, nil); r.status != 200 {
		t.Fatalf("hub a: %d", r.status)
	}
	wantAzureError(t, cb.do("GET", "/devices/dev1", nil, nil), 404, "DeviceNotFound")
	// The Host header decides, with a port and any casing.
	cb.host = "HUB-A.example.net:443"
	cb.token = ca.token
	if r := cb.do("GET", "/devices/dev1", nil, nil); r.status != 200 {
		t.Fatalf("by Host header: %d %s", r.status, r.body)
	}
	cb.host = "unknown.example.net"
	wantAzureError(t, cb.do("GET", "/devices/dev1", nil, nil), 404, "IotHubNotFound")

	// MQTT: the username's host picks the hub; dev1 exists only on a.
	e.connectDevice(a, "dev1", keyA)
	if _, err := e.connect(connOpts{username: "hub-b.example.net/dev1/?api-version=1", clientID: "dev1",
		password: sign("hub-b.example.net/devices/dev1", keyA, "", t0.Add(time.Hour), true)}); err == nil {
		t.Fatal("dev1 connected to hub b")
	}
	if b.Connected("dev1", "") || !a.Connected("dev1", "") {
		t.Fatal("connection state on the wrong hub")
	}
	if got := e.set.HostNames(); len(got) != 2 || got[0] != "hub-a.example.net" {
		t.Errorf("HostNames %v", got)
	}
}

// TestHubByLocalAddress: several hubs on several loopback addresses.
func TestHubByLocalAddress(t *testing.T) {
	s, err := NewSet(Config{Hubs: []HubConfig{{HostName: "127.0.0.2"}, {HostName: "hub-b.example.net", Addrs: []string{"127.0.0.3"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct{ host, local, want string }{
		{"127.0.0.2:443", "", "127.0.0.2"},
		{"elsewhere", "127.0.0.3:443", "hub-b.example.net"},
		{"elsewhere", "127.0.0.2:8883", "127.0.0.2"},
		{"elsewhere", "127.0.0.9:443", ""},
	} {
		h, ok := s.lookup(c.host, c.local)
		if got := ""; ok {
			got = h.HostName()
			if got != c.want {
				t.Errorf("lookup(%q,%q) = %q, want %q", c.host, c.local, got, c.want)
			}
		} else if c.want != "" {
			t.Errorf("lookup(%q,%q) found nothing, want %q", c.host, c.local, c.want)
		}
	}
	if _, err := NewSet(Config{Hubs: []HubConfig{{HostName: "a"}, {HostName: "A"}}}); err == nil {
		t.Error("duplicate host names accepted")
	}
	if _, err := NewSet(Config{}); err == nil {
		t.Error("empty config accepted")
	}
}

func TestIdentHubs(t *testing.T) {
	e := newEnv(t, "hub-a.example.net", "hub-b.example.net")
	var hubs ident.Hubs = e.set
	key := "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=" // 32 bytes
	if err := hubs.UpsertDevice("hub-a.example.net", ident.Device{DeviceID: "dev1", Auth: ident.Auth{Type: ident.AuthSAS, PrimaryKey: key}}); err != nil {
		t.Fatal(err)
	}
	a := e.hub("hub-a.example.net")
	d := e.connectDevice(a, "dev1", key)
	d.sub("$iothub/twin/PATCH/properties/desired/#")
	_ = d.pub("$iothub/twin/PATCH/properties/reported/?$rid=1", `{"fw":"2"}`)
	if _, err := a.UpdateTwin(context.Background(), "dev1", "", TwinPatch{Tags: map[string]any{"t": "x"}, Desired: map[string]any{"d": 1}}, "*"); err != nil {
		t.Fatal(err)
	}
	d.next() // desired push
	tw, ok := hubs.ExportTwin("hub-a.example.net", "dev1")
	if !ok || tw.Tags["t"] != "x" || tw.Reported["fw"] != "2" {
		t.Fatalf("export %+v", tw)
	}
	if _, ok := tw.Desired["$version"]; ok {
		t.Error("export carries $version")
	}
	if _, ok := hubs.ExportTwin("hub-a.example.net", "ghost"); ok {
		t.Error("ghost exported")
	}

	// Upsert again with a new key: same device, new auth.
	key2 := "b3RoZXJvdGhlcm90aGVyb3RoZXJvdGhlcm90aGVyMTI="
	if err := hubs.UpsertDevice("hub-a.example.net", ident.Device{DeviceID: "dev1", EdgeEnabled: true, Auth: ident.Auth{Type: ident.AuthSAS, PrimaryKey: key2}}); err != nil {
		t.Fatal(err)
	}
	got, _ := a.GetDevice(context.Background(), "dev1")
	if got.Authentication.SymmetricKey.PrimaryKey != key2 || !got.Capabilities.IoTEdge {
		t.Fatalf("upsert update %+v", got)
	}

	// Import replaces everything; the connected device hears the desired change.
	if err := hubs.ImportTwin("hub-a.example.net", "dev1", ident.Twin{Desired: map[string]any{"e": 2}}); err != nil {
		t.Fatal(err)
	}
	if m := d.next(); string(m.payload) != `{"$version":3,"d":null,"e":2}` {
		t.Fatalf("import push %s", m.payload)
	}
	tw, _ = hubs.ExportTwin("hub-a.example.net", "dev1")
	if len(tw.Tags) != 0 || len(tw.Reported) != 0 || tw.Desired["e"] != 2 {
		t.Fatalf("after import %+v", tw)
	}
	// Moving to hub b.
	if err := hubs.UpsertDevice("hub-b.example.net", ident.Device{DeviceID: "dev1", Auth: ident.Auth{Type: ident.AuthSAS, PrimaryKey: key2}}); err != nil {
		t.Fatal(err)
	}
	if err := hubs.ImportTwin("hub-b.example.net", "dev1", tw); err != nil {
		t.Fatal(err)
	}
	if err := hubs.RemoveDevice("hub-a.example.net", "dev1"); err != nil {
		t.Fatal(err)
	}
	d.waitClosed()
	if err := hubs.RemoveDevice("hub-a.example.net", "dev1"); err != nil {
		t.Fatalf("removing a missing device: %v", err)
	}
	if err := hubs.ImportTwin("hub-a.example.net", "dev1", tw); !isErr(err, ErrDeviceNotFound) {
		t.Fatalf("import on missing device: %v", err)
	}
	if err := hubs.UpsertDevice("hub-z", ident.Device{DeviceID: "x"}); !isErr(err, ErrHubNotFound) {
		t.Fatalf("unknown hub: %v", err)
	}
}

func TestServeEvents(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	key := e.device(h, "dev1")
	d := e.connectDevice(h, "dev1", key)
	srv := httptest.NewServer(http.HandlerFunc(h.ServeEvents))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events", nil)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	// The handler subscribes before answering, so this telemetry is seen.
	if err := d.pub("devices/dev1/messages/events/a=1", "hello"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(res.Body).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var ev Event
	if err := json.Unmarshal(line, &ev); err != nil || ev.DeviceID != "dev1" || string(ev.Body) != "hello" || ev.Properties["a"] != "1" {
		t.Fatalf("event %s (%v)", line, err)
	}
	cancel()
	waitTaps(t, h, 0) // the events handler noticed its reader left
	st, err := json.Marshal(h.Stats())
	if err != nil {
		t.Fatal(err)
	}
	if string(st) != `{"hostName":"hub1.example.net","devices":1,"connected":1,"droppedEvents":0,"eventTaps":[],"counters":{"connects":1,"disconnects":0,"messagesIn":1,"messagesOut":0,"twinGets":0,"twinPatches":0,"methodCalls":0,"c2dSent":0,"c2dDelivered":0,"throttled":0}}` {
		t.Errorf("stats %s", st)
	}
}

func TestRESTModuleTwinAndMethod(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	e.device(h, "dev1")
	m, err := h.CreateModule(context.Background(), Module{DeviceID: "dev1", ModuleID: "agent"})
	if err != nil {
		t.Fatal(err)
	}
	c := e.rest("hub1.example.net", "iothubowner")
	r := c.do("PATCH", "/twins/dev1/modules/agent", map[string]any{"properties": map[string]any{"desired": map[string]any{"x": 1}}}, nil)
	if tw := r.json(t); r.status != 200 || tw["moduleId"] != "agent" || tw["deviceId"] != "dev1" {
		t.Fatalf("module twin %d %s", r.status, r.body)
	}
	md, err := e.connect(connOpts{username: "hub1.example.net/dev1/agent/?api-version=1", clientID: "dev1/agent",
		password: sign("hub1.example.net/devices/dev1/modules/agent", m.Authentication.SymmetricKey.PrimaryKey, "", t0.Add(time.Hour), true)})
	if err != nil {
		t.Fatal(err)
	}
	md.sub("$iothub/methods/POST/#", "devices/dev1/modules/agent/#")
	if _, ok := md.sess.Subscribe("devices/dev1/messages/devicebound/#", 1); ok {
		t.Error("module subscribed to the device's C2D topic")
	}
	done := make(chan resp, 1)
	go func() {
		done <- c.do("POST", "/twins/dev1/modules/agent/methods", map[string]any{"methodName": "m"}, nil)
	}()
	msg := md.next()
	_ = md.pub("$iothub/methods/res/200/?$rid="+strings.TrimPrefix(msg.topic, "$iothub/methods/POST/m/?$rid="), "{}")
	if r := <-done; r.status != 200 {
		t.Fatalf("module method %d %s", r.status, r.body)
	}
	if !h.Connected("dev1", "agent") || h.Connected("dev1", "") {
		t.Error("module connection state")
	}
	wantAzureError(t, c.do("GET", "/twins/dev1/modules/nope", nil, nil), 404, "ModuleNotFound")
}

// The hub API ignores trailing slashes: azure-iothub's Registry.list asks
// for GET /devices/ [Azure/azure-iot-sdk-node service/src/registry.ts].
func TestRESTTrailingSlash(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	e.device(h, "dev1")
	c := e.rest("hub1.example.net", "iothubowner")
	for _, p := range []string{"/devices/", "/devices//", "/twins/dev1/"} {
		if r := c.do("GET", p, nil, nil); r.status != 200 {
			t.Errorf("GET %s: %d %s", p, r.status, r.body)
		}
	}
}

// No log line at debug carries a stream token, a SAS signature or a key
// (issue 11, finding 5: a failed stream-request publish logged "$auth=…").
func TestLogsHoldNoCredentials(t *testing.T) {
	var buf lockedBuffer
	e := newEnvWith(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	h := e.hub("hub1.example.net")
	key := e.device(h, "dev1")
	c := e.rest("hub1.example.net", "service")
	pw := sign("hub1.example.net/devices/dev1", key, "", e.clock.Now().Add(time.Hour), true)
	d, err := e.connect(connOpts{username: "hub1.example.net/dev1/?api-version=2021-04-12", clientID: "dev1", password: pw})
	if err != nil {
		t.Fatal(err)
	}
	// The hub granted the stream subscription but the broker does not have
	// it: the request's publish fails.
	if _, ok := d.sess.Subscribe("$iothub/streams/POST/#", 0); !ok {
		t.Fatal("subscribe refused")
	}
	wantAzureError(t, c.do("POST", "/twins/dev1/streams/ssh", nil, nil), 404, "DeviceNotOnline")
	// A wrong token, on MQTT and on REST.
	if _, err := e.connect(connOpts{username: "hub1.example.net/dev1/?api-version=2021-04-12", clientID: "dev1",
		password: sign("hub1.example.net/devices/dev1", "d3Jvbmcta2V5LXdyb25nLWtleQ==", "", e.clock.Now().Add(time.Hour), true)}); err == nil {
		t.Fatal("wrong key connected")
	}
	bad := *c
	bad.token = sign("hub1.example.net", "d3Jvbmcta2V5LXdyb25nLWtleQ==", "service", e.clock.Now().Add(time.Hour), false)
	wantAzureError(t, bad.do("GET", "/twins/dev1", nil, nil), 401, "IotHubUnauthorizedAccess")
	d.out.Close()
	d.out.wg.Wait()

	logs := buf.String()
	if !strings.Contains(logs, "publish failed") {
		t.Fatalf("the failed publish was not logged; the test no longer covers it:\n%s", logs)
	}
	_, pwSig, _ := strings.Cut(pw, "sig=")
	pwSig, _, _ = strings.Cut(pwSig, "&")
	_, restSig, _ := strings.Cut(bad.token, "sig=")
	restSig, _, _ = strings.Cut(restSig, "&")
	for name, secret := range map[string]string{"stream token": "dtok-s1", "device key": key, "device token sig": pwSig, "service token sig": restSig} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs hold the %s %q:\n%s", name, secret, logs)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent log writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
