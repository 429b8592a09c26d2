package hub

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/broker"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

func TestClaims(t *testing.T) {
	one := newEnv(t, "hub1.example.net")
	two := newEnv(t, "hub1.example.net", "hub2.example.net")
	cases := []struct {
		user     string
		one, two bool
	}{
		{"hub1.example.net/dev1/?api-version=2021-04-12&DeviceClientType=x", true, true},
		{"HUB2.example.net/dev1/?api-version=2021-04-12", true, true},
		{"hub1.example.net/dev1/mod1/?api-version=2021-04-12", true, true},
		{"127.0.0.1/dev1/?api-version=2020-09-30", true, false}, // single hub: any host
		{"0ne000ABC/registrations/dev1/api-version=2019-03-31&ClientVersion=x", false, false},
		{"hub1.example.net/dev1", false, false},
		{"hub1.example.net//?api-version=1", false, false},
		{"hub1.example.net/a/b/c/?api-version=1", false, false},
		{"", false, false},
	}
	for _, c := range cases {
		if got := one.set.Claims(c.user); got != c.one {
			t.Errorf("one hub: Claims(%q) = %v", c.user, got)
		}
		if got := two.set.Claims(c.user); got != c.two {
			t.Errorf("two hubs: Claims(%q) = %v", c.user, got)
		}
	}
}

type testCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func genCert(t *testing.T, cn string, isCA bool, parent *testCert, notAfter time.Time) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: t0.Add(-time.Hour), NotAfter: notAfter, BasicConstraintsValid: true, IsCA: isCA,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCert{c, key}
}

func withCerts(certs ...*x509.Certificate) func(*broker.ConnectInfo) {
	return func(i *broker.ConnectInfo) { i.TLS = &tls.ConnectionState{PeerCertificates: certs} }
}

func TestConnect(t *testing.T) {
	ca := genCert(t, "test CA", true, nil, t0.Add(48*time.Hour))
	e := &env{t: t, clock: &fakeClock{now: t0}, relay: &fakeRelay{}}
	s, err := NewSet(Config{Hubs: []HubConfig{{HostName: "hub1.example.net", ClientCAs: []*x509.Certificate{ca.cert}}},
		Now: e.clock.Now, AfterFunc: e.clock.AfterFunc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	e.set = s
	h := e.hub("hub1.example.net")
	ctx := context.Background()
	key := e.device(h, "dev1")
	if _, err := h.CreateModule(ctx, Module{DeviceID: "dev1", ModuleID: "mod1"}); err != nil {
		t.Fatal(err)
	}
	mod, _ := h.GetModule(ctx, "dev1", "mod1")
	disabledKey := e.device(h, "off")
	if err := h.SetStatus(ctx, "off", StatusDisabled); err != nil {
		t.Fatal(err)
	}
	self := genCert(t, "x1", false, nil, t0.Add(24*time.Hour))
	sum1 := sha1.Sum(self.cert.Raw)
	sum2 := sha256.Sum256(self.cert.Raw)
	for id, tp := range map[string]string{"x1": hex.EncodeToString(sum1[:]), "x2": strings.ToUpper(hex.EncodeToString(sum2[:]))} {
		if _, err := h.CreateDevice(ctx, Device{DeviceID: id, Authentication: &Authentication{Type: AuthSelfSigned,
			X509Thumbprint: &X509Thumbprint{PrimaryThumbprint: tp}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.CreateDevice(ctx, Device{DeviceID: "cadev", Authentication: &Authentication{Type: AuthCertificateAuthority}}); err != nil {
		t.Fatal(err)
	}
	caLeaf := genCert(t, "cadev", false, ca, t0.Add(24*time.Hour))
	caWrongCN := genCert(t, "other", false, ca, t0.Add(24*time.Hour))
	devPolicy, _ := h.Policy("device")

	host := "hub1.example.net"
	user := func(id string) string { return host + "/" + id + "/?api-version=2021-04-12&DeviceClientType=test" }
	later := t0.Add(time.Hour)
	cases := []struct {
		name    string
		o       connOpts
		wantErr error // nil: accepted
	}{
		{"sas percent-encoded sr", connOpts{username: user("dev1"), clientID: "dev1", password: sign(host+"/devices/dev1", key, "", later, true)}, nil},
		{"sas raw sr (C SDK)", connOpts{username: user("dev1"), clientID: "dev1", password: sign(host+"/devices/dev1", key, "", later, false)}, nil},
		{"module", connOpts{username: host + "/dev1/mod1/?api-version=2021-04-12", clientID: "dev1/mod1",
			password: sign(host+"/devices/dev1/modules/mod1", mod.Authentication.SymmetricKey.PrimaryKey, "", later, true)}, nil},
		{"device policy token", connOpts{username: user("dev1"), clientID: "dev1", password: sign(host+"/devices/dev1", devPolicy.PrimaryKey, "device", later, true)}, nil},
		{"wrong key", connOpts{username: user("dev1"), clientID: "dev1", password: sign(host+"/devices/dev1", disabledKey, "", later, true)}, broker.ErrNotAuthorized},
		{"expired", connOpts{username: user("dev1"), clientID: "dev1", password: sign(host+"/devices/dev1", key, "", t0.Add(-time.Second), true)}, broker.ErrNotAuthorized},
		{"token for another device", connOpts{username: user("dev1"), clientID: "dev1", password: sign(host+"/devices/off", key, "", later, true)}, broker.ErrNotAuthorized},
		{"unknown device", connOpts{username: user("nobody"), clientID: "nobody", password: sign(host+"/devices/nobody", key, "", later, true)}, broker.ErrNotAuthorized},
		{"disabled device", connOpts{username: user("off"), clientID: "off", password: sign(host+"/devices/off", disabledKey, "", later, true)}, broker.ErrNotAuthorized},
		{"client id mismatch", connOpts{username: user("dev1"), clientID: "dev2", password: sign(host+"/devices/dev1", key, "", later, true)}, broker.ErrBadCredentials},
		{"no credentials", connOpts{username: user("dev1"), clientID: "dev1"}, broker.ErrNotAuthorized},
		{"x509 self-signed sha1", connOpts{username: user("x1"), clientID: "x1", info: withCerts(self.cert)}, nil},
		{"x509 self-signed sha256", connOpts{username: user("x2"), clientID: "x2", info: withCerts(self.cert)}, nil},
		{"x509 thumbprint mismatch", connOpts{username: user("x1"), clientID: "x1", info: withCerts(caLeaf.cert)}, broker.ErrNotAuthorized},
		{"x509 CA chain", connOpts{username: user("cadev"), clientID: "cadev", info: withCerts(caLeaf.cert, ca.cert)}, nil},
		{"x509 CA wrong CN", connOpts{username: user("cadev"), clientID: "cadev", info: withCerts(caWrongCN.cert)}, broker.ErrNotAuthorized},
		{"x509 CA untrusted", connOpts{username: user("cadev"), clientID: "cadev", info: withCerts(genCert(t, "cadev", false, nil, later).cert)}, broker.ErrNotAuthorized},
		{"sas device given a cert only", connOpts{username: user("dev1"), clientID: "dev1", info: withCerts(self.cert)}, broker.ErrNotAuthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			d, err := e.connect(c.o)
			if c.wantErr == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !h.Connected(strings.Split(c.o.clientID, "/")[0], moduleOf(c.o.clientID)) {
					t.Error("not recorded as connected")
				}
				d.out.Close()
				d.out.wg.Wait()
				return
			}
			if !isErr(err, c.wantErr) {
				t.Fatalf("err %v, want %v", err, c.wantErr)
			}
		})
	}
}

func moduleOf(clientID string) string {
	_, m, _ := strings.Cut(clientID, "/")
	return m
}

func TestConnectionStateAndTakeover(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	key := e.device(h, "dev1")
	before, _ := h.GetDevice(context.Background(), "dev1")
	if before.ConnectionState != "Disconnected" {
		t.Fatalf("state %q", before.ConnectionState)
	}
	e.clock.Advance(time.Minute)
	d1 := e.connectDevice(h, "dev1", key)
	got, _ := h.GetDevice(context.Background(), "dev1")
	if got.ConnectionState != "Connected" || !got.ConnectionStateUpdatedTime.Equal(t0.Add(time.Minute)) || !got.LastActivityTime.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after connect: %+v", got)
	}
	// A second connection of the same identity closes the first.
	d2 := e.connectDevice(h, "dev1", key)
	d1.waitClosed()
	if !h.Connected("dev1", "") {
		t.Fatal("second connection not current")
	}
	d2.out.Close()
	d2.out.wg.Wait()
	got, _ = h.GetDevice(context.Background(), "dev1")
	if got.ConnectionState != "Disconnected" {
		t.Fatalf("after disconnect: %q", got.ConnectionState)
	}
}

func TestTokenExpiryDropsConnection(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	key := e.device(h, "dev1")
	d := e.connectDevice(h, "dev1", key) // token valid for one hour
	e.clock.Advance(59 * time.Minute)
	if !h.Connected("dev1", "") {
		t.Fatal("dropped before expiry")
	}
	e.clock.Advance(time.Minute)
	d.waitClosed()
	if h.Connected("dev1", "") {
		t.Fatal("still connected after expiry")
	}
	// A fresh token connects again.
	e.connectDevice(h, "dev1", key)
}

func TestDisablingDropsConnection(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	key := e.device(h, "dev1")
	d := e.connectDevice(h, "dev1", key)
	if err := h.SetStatus(context.Background(), "dev1", StatusDisabled); err != nil {
		t.Fatal(err)
	}
	d.waitClosed()
}

func TestACL(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	key := e.device(h, "dev1")
	e.device(h, "dev2")
	d := e.connectDevice(h, "dev1", key)
	subs := []struct {
		filter string
		ok     bool
	}{
		{"devices/dev1/messages/devicebound/#", true},
		{"$iothub/twin/res/#", true},
		{"$iothub/twin/PATCH/properties/desired/#", true},
		{"$iothub/methods/POST/#", true},
		{"$iothub/streams/POST/#", true},
		{"$iothub/streams/res/#", true},
		{"devices/dev2/messages/devicebound/#", false},
		{"devices/+/messages/devicebound/#", false},
		{"#", false},
		{"$iothub/#", false},
	}
	for _, s := range subs {
		_, ok := d.sess.Subscribe(s.filter, 1)
		if ok != s.ok {
			t.Errorf("Subscribe(%q) ok=%v, want %v", s.filter, ok, s.ok)
		}
	}
	if g, _ := d.sess.Subscribe("$iothub/methods/POST/#", 2); g != 1 {
		t.Errorf("QoS 2 subscription granted %d, want 1", g)
	}
	pubs := []struct {
		topic string
		ok    bool
	}{
		{"devices/dev1/messages/events/", true},
		{"devices/dev1/messages/events", true},
		{"devices/dev2/messages/events/", false},
		{"devices/dev1/messages/eventsX", false},
		{"devices/dev1/messages/devicebound/", false},
		{"$iothub/unknown/thing", false},
		{"other/topic", false},
	}
	for _, p := range pubs {
		err := d.pub(p.topic, "{}")
		if (err == nil) != p.ok || (err != nil && !isErr(err, broker.ErrNotAuthorized)) {
			t.Errorf("Publish(%q) = %v, want ok=%v", p.topic, err, p.ok)
		}
	}
	if err := d.sess.Publish("devices/dev1/messages/events/", nil, 2); !isErr(err, broker.ErrNotAuthorized) {
		t.Errorf("QoS 2 publish: %v", err)
	}
	var sawUnknown bool
	for _, u := range e.set.Unhandled() {
		if strings.Contains(u.Detail, "$iothub/unknown/thing") {
			sawUnknown = true
		}
	}
	if !sawUnknown {
		t.Error("unknown $iothub topic not recorded as unhandled")
	}
}

func TestTelemetryEvents(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	key := e.device(h, "dev1")
	d := e.connectDevice(h, "dev1", key)
	events, cancel := h.Subscribe(4)
	defer cancel()
	if err := d.pub("devices/dev1/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8&temp=21%20C&flag", `{"t":21}`); err != nil {
		t.Fatal(err)
	}
	ev := <-events
	if ev.DeviceID != "dev1" || ev.Hub != "hub1.example.net" || string(ev.Body) != `{"t":21}` {
		t.Errorf("event %+v", ev)
	}
	if ev.System["$.ct"] != "application/json" || ev.System["$.ce"] != "utf-8" {
		t.Errorf("system %v", ev.System)
	}
	if ev.Properties["temp"] != "21 C" || ev.Properties["flag"] != "" || len(ev.Properties) != 2 {
		t.Errorf("properties %v", ev.Properties)
	}
	cancel()
	if _, ok := <-events; ok {
		t.Error("channel not closed by cancel")
	}
}

func TestTwinDeviceSide(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	ctx := context.Background()
	key := e.device(h, "dev1")
	d := e.connectDevice(h, "dev1", key)
	d.sub("$iothub/twin/res/#", "$iothub/twin/PATCH/properties/desired/#")

	if err := d.pub("$iothub/twin/GET/?$rid=1", " "); err != nil {
		t.Fatal(err)
	}
	m := d.next()
	if m.topic != "$iothub/twin/res/200/?$rid=1" || string(m.payload) != `{"desired":{"$version":1},"reported":{"$version":1}}` {
		t.Fatalf("GET answer %q %s", m.topic, m.payload)
	}

	if err := d.pub("$iothub/twin/PATCH/properties/reported/?$rid=2", `{"fw":"1.0","net":{"ip":"10.0.0.2","up":true}}`); err != nil {
		t.Fatal(err)
	}
	m = d.next()
	if m.topic != "$iothub/twin/res/204/?$rid=2&$version=2" || len(m.payload) != 0 {
		t.Fatalf("PATCH answer %q %q", m.topic, m.payload)
	}
	if err := d.pub("$iothub/twin/PATCH/properties/reported/?$rid=3", `{"net":{"up":null}}`); err != nil {
		t.Fatal(err)
	}
	if m = d.next(); m.topic != "$iothub/twin/res/204/?$rid=3&$version=3" {
		t.Fatalf("second PATCH answer %q", m.topic)
	}
	for _, bad := range []string{`not json`, `[1]`, `{"a.b":1}`, `null`} {
		if err := d.pub("$iothub/twin/PATCH/properties/reported/?$rid=4", bad); err != nil {
			t.Fatal(err)
		}
		m = d.next()
		var body mqttErrorBody
		if m.topic != "$iothub/twin/res/400/?$rid=4" || json.Unmarshal(m.payload, &body) != nil || body.ErrorCode != 400004 || body.Message == "" {
			t.Fatalf("bad patch %q: answer %q %s", bad, m.topic, m.payload)
		}
	}

	// Service updates desired twice; the device gets both, in order.
	tw, _ := h.GetTwin(ctx, "dev1", "")
	tw, err := h.UpdateTwin(ctx, "dev1", "", TwinPatch{Desired: map[string]any{"interval": 5}}, tw.ETag)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.UpdateTwin(ctx, "dev1", "", TwinPatch{Desired: map[string]any{"interval": nil, "mode": "x"}}, "*"); err != nil {
		t.Fatal(err)
	}
	m = d.next()
	if m.topic != "$iothub/twin/PATCH/properties/desired/?$version=2" || string(m.payload) != `{"$version":2,"interval":5}` {
		t.Fatalf("first desired push %q %s", m.topic, m.payload)
	}
	m = d.next()
	if m.topic != "$iothub/twin/PATCH/properties/desired/?$version=3" || string(m.payload) != `{"$version":3,"interval":null,"mode":"x"}` {
		t.Fatalf("second desired push %q %s", m.topic, m.payload)
	}
	// Stale etag refused.
	if _, err := h.UpdateTwin(ctx, "dev1", "", TwinPatch{Tags: map[string]any{"a": 1}}, tw.ETag); !isErr(err, ErrPreconditionFailed) {
		t.Fatalf("stale etag: %v", err)
	}

	if err := d.pub("$iothub/twin/GET/?$rid=5", ""); err != nil {
		t.Fatal(err)
	}
	m = d.next()
	want := `{"desired":{"$version":3,"mode":"x"},"reported":{"$version":3,"fw":"1.0","net":{"ip":"10.0.0.2"}}}`
	if string(m.payload) != want {
		t.Fatalf("GET after changes %s\nwant %s", m.payload, want)
	}
	svc, _ := h.GetTwin(ctx, "dev1", "")
	meta := svc.Properties.Reported["$metadata"].(map[string]any)
	if _, ok := meta["net"].(map[string]any)["ip"].(map[string]any)["$lastUpdated"]; !ok {
		t.Errorf("reported metadata %v", meta)
	}
	if svc.Properties.Desired["$metadata"].(map[string]any)["mode"].(map[string]any)["$lastUpdatedVersion"] != int64(3) {
		t.Errorf("desired metadata %v", svc.Properties.Desired["$metadata"])
	}
	d.none()
}

func TestMethods(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	ctx := context.Background()
	key := e.device(h, "dev1")

	if _, err := h.InvokeMethod(ctx, "dev1", "", MethodRequest{MethodName: "reboot"}); !isErr(err, ErrDeviceNotOnline) {
		t.Fatalf("offline: %v", err)
	}
	if _, err := h.InvokeMethod(ctx, "ghost", "", MethodRequest{MethodName: "reboot"}); !isErr(err, ErrDeviceNotFound) {
		t.Fatalf("unknown device: %v", err)
	}
	d := e.connectDevice(h, "dev1", key)
	if _, err := h.InvokeMethod(ctx, "dev1", "", MethodRequest{MethodName: "reboot"}); !isErr(err, ErrDeviceNotOnline) {
		t.Fatalf("connected but not subscribed: %v", err)
	}
	d.sub("$iothub/methods/POST/#")

	type result struct {
		r   MethodResult
		err error
	}
	call := func(req MethodRequest) chan result {
		ch := make(chan result, 1)
		go func() {
			r, err := h.InvokeMethod(ctx, "dev1", "", req)
			ch <- result{r, err}
		}()
		return ch
	}

	// Round trip; no payload is sent as JSON null.
	ch := call(MethodRequest{MethodName: "reboot"})
	m := d.next()
	rid, ok := strings.CutPrefix(m.topic, "$iothub/methods/POST/reboot/?$rid=")
	if !ok || string(m.payload) != "null" || m.qos != 0 {
		t.Fatalf("method request %q %s qos %d", m.topic, m.payload, m.qos)
	}
	if err := d.pub("$iothub/methods/res/201/?$rid="+rid, `{"ok":true}`); err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil || r.r.Status != 201 || string(r.r.Payload) != `{"ok":true}` {
		t.Fatalf("result %+v", r)
	}

	// Another device cannot answer for dev1.
	key2 := e.device(h, "dev2")
	d2 := e.connectDevice(h, "dev2", key2)
	ch = call(MethodRequest{MethodName: "m", Payload: []byte(`{"x":1}`), ResponseTimeoutInSeconds: 10})
	m = d.next()
	rid = strings.TrimPrefix(m.topic, "$iothub/methods/POST/m/?$rid=")
	if string(m.payload) != `{"x":1}` {
		t.Fatalf("payload %s", m.payload)
	}
	if err := d2.pub("$iothub/methods/res/200/?$rid="+rid, `1`); err != nil {
		t.Fatal(err)
	}
	// No answer from dev1 within 10 s: 504.
	e.clock.waitTimers(t, 3) // dev1 expiry, dev2 expiry, method timeout
	e.clock.Advance(10 * time.Second)
	if r := <-ch; !isErr(r.err, ErrTimeout) {
		t.Fatalf("timeout: %+v", r)
	}

	// Empty answer payload becomes null.
	ch = call(MethodRequest{MethodName: "m"})
	m = d.next()
	rid = strings.TrimPrefix(m.topic, "$iothub/methods/POST/m/?$rid=")
	_ = d.pub("$iothub/methods/res/200/?$rid="+rid, "")
	if r := <-ch; r.err != nil || string(r.r.Payload) != "null" {
		t.Fatalf("empty answer: %+v", r)
	}

	// Disconnect while waiting: DeviceNotOnline.
	ch = call(MethodRequest{MethodName: "m"})
	d.next()
	d.out.Close()
	if r := <-ch; !isErr(r.err, ErrDeviceNotOnline) {
		t.Fatalf("dropped device: %+v", r)
	}

	for _, bad := range []MethodRequest{{MethodName: ""}, {MethodName: "a/b"}, {MethodName: "m", ResponseTimeoutInSeconds: 1},
		{MethodName: "m", ResponseTimeoutInSeconds: 301}, {MethodName: "m", Payload: []byte("{")}} {
		if _, err := h.InvokeMethod(ctx, "dev1", "", bad); !isErr(err, ErrInvalid) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

func TestMethodWaitsForConnect(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	key := e.device(h, "dev1")
	ch := make(chan error, 1)
	go func() {
		_, err := h.InvokeMethod(context.Background(), "dev1", "", MethodRequest{MethodName: "m", ConnectTimeoutInSeconds: 30})
		ch <- err
	}()
	e.clock.waitTimers(t, 1) // the connect timeout
	d := e.connectDevice(h, "dev1", key)
	d.sub("$iothub/methods/POST/#")
	m := d.next()
	_ = d.pub("$iothub/methods/res/200/?$rid="+strings.TrimPrefix(m.topic, "$iothub/methods/POST/m/?$rid="), "{}")
	if err := <-ch; err != nil {
		t.Fatal(err)
	}
	// And gives up after the connect timeout.
	d.out.Close()
	d.out.wg.Wait()
	go func() {
		_, err := h.InvokeMethod(context.Background(), "dev1", "", MethodRequest{MethodName: "m", ConnectTimeoutInSeconds: 30})
		ch <- err
	}()
	e.clock.waitTimers(t, 1)
	e.clock.Advance(30 * time.Second)
	if err := <-ch; !isErr(err, ErrDeviceNotOnline) {
		t.Fatal(err)
	}
}

func TestC2D(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	ctx := context.Background()
	key := e.device(h, "dev1")
	if err := h.SendC2D(ctx, "dev1", C2DMessage{MessageID: "m1", ContentType: "text/plain", Properties: map[string]string{"k": "a b/c"}, Body: []byte("one")}); err != nil {
		t.Fatal(err)
	}
	if err := h.SendC2D(ctx, "dev1", C2DMessage{MessageID: "m2", Body: []byte("two")}); err != nil {
		t.Fatal(err)
	}
	if d, _ := h.GetDevice(ctx, "dev1"); d.CloudToDeviceMessageCount != 2 {
		t.Fatalf("count %d", d.CloudToDeviceMessageCount)
	}

	// First connection: delivered but never PUBACKed, then dropped.
	d, err := e.connect(connOpts{username: "hub1.example.net/dev1/?api-version=1", clientID: "dev1", ack: true,
		password: sign("hub1.example.net/devices/dev1", key, "", t0.Add(time.Hour), true)})
	if err != nil {
		t.Fatal(err)
	}
	d.sub("devices/dev1/messages/devicebound/#")
	m := d.next()
	wantTopic := "devices/dev1/messages/devicebound/%24.ct=text%2Fplain&%24.mid=m1&%24.to=%2Fdevices%2Fdev1%2Fmessages%2Fdevicebound&k=a%20b%2Fc"
	if m.topic != wantTopic || string(m.payload) != "one" || m.qos != 1 {
		t.Fatalf("delivery %q %q qos %d\nwant %q", m.topic, m.payload, m.qos, wantTopic)
	}
	if m = d.next(); string(m.payload) != "two" {
		t.Fatalf("second delivery %q", m.payload)
	}
	d.out.Close()
	d.out.wg.Wait()

	// Second connection: both redelivered; PUBACK completes them.
	d, err = e.connect(connOpts{username: "hub1.example.net/dev1/?api-version=1", clientID: "dev1", ack: true,
		password: sign("hub1.example.net/devices/dev1", key, "", t0.Add(time.Hour), true)})
	if err != nil {
		t.Fatal(err)
	}
	d.sub("devices/dev1/messages/devicebound/#")
	if a, b := d.next(), d.next(); string(a.payload) != "one" || string(b.payload) != "two" {
		t.Fatalf("redelivery %q %q", a.payload, b.payload)
	}
	d.out.puback()
	if dv, _ := h.GetDevice(ctx, "dev1"); dv.CloudToDeviceMessageCount != 0 {
		t.Fatalf("after PUBACK count %d", dv.CloudToDeviceMessageCount)
	}
	// Sent while connected and subscribed: delivered at once.
	if err := h.SendC2D(ctx, "dev1", C2DMessage{Body: []byte("three")}); err != nil {
		t.Fatal(err)
	}
	if m := d.next(); string(m.payload) != "three" {
		t.Fatalf("live delivery %q", m.payload)
	}
	d.none()

	// Queue limit.
	e.device(h, "full")
	for i := range C2DQueueLimit {
		if err := h.SendC2D(ctx, "full", C2DMessage{Body: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.SendC2D(ctx, "full", C2DMessage{}); !isErr(err, ErrQueueFull) || restCode(err) != errQueueDepth {
		t.Fatalf("51st message: %v", err)
	}
	if n, _ := h.PurgeC2D(ctx, "full"); n != C2DQueueLimit {
		t.Fatalf("purged %d", n)
	}
	if err := h.SendC2D(ctx, "ghost", C2DMessage{}); !isErr(err, ErrDeviceNotFound) {
		t.Fatal(err)
	}
}

// Without PUBACK reporting, a successful publish completes the message.
func TestC2DPlainOutbound(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	key := e.device(h, "dev1")
	d := e.connectDevice(h, "dev1", key)
	d.sub("devices/dev1/messages/devicebound/#")
	if err := h.SendC2D(context.Background(), "dev1", C2DMessage{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	d.next()
	testwait.For(t, waitTimeout, "the message to complete", func() (bool, string) {
		dv, err := h.GetDevice(context.Background(), "dev1")
		if err != nil {
			return false, err.Error()
		}
		return dv.CloudToDeviceMessageCount == 0, fmt.Sprintf("%d messages queued", dv.CloudToDeviceMessageCount)
	})
}

// A batch of queued C2D messages whose first delivery the broker refuses
// (the device's SUBSCRIBE not yet in place there) is retried as a whole: all
// three arrive, in order, without a reconnect (issue 12).
func TestC2DBatchRetriedAfterRefusal(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	ctx := context.Background()
	key := e.device(h, "dev1")
	for _, b := range []string{"one", "two", "three"} {
		if err := h.SendC2D(ctx, "dev1", C2DMessage{Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	d := e.connectDevice(h, "dev1", key)
	const filter = "devices/dev1/messages/devicebound/#"
	// The hub grants the subscription before the broker has it: the first
	// delivery attempt is refused.
	g, ok := d.sess.Subscribe(filter, 1)
	if !ok {
		t.Fatal("subscribe refused")
	}
	testwait.True(t, waitTimeout, "the broker to refuse a delivery", func() bool {
		d.out.mu.Lock()
		defer d.out.mu.Unlock()
		return d.out.refused > 0
	})
	d.out.mu.Lock()
	d.out.subs[filter] = g
	d.out.mu.Unlock()
	for _, want := range []string{"one", "two", "three"} {
		if m := d.next(); string(m.payload) != want {
			t.Fatalf("delivery %q, want %q", m.payload, want)
		}
	}
}

// A device id with '%' connects whether the token's sr is percent-encoded
// (Node, C#) or sent raw (Microsoft's C client: sr "<host>/devices/<id>" as
// is). The signature covers sr exactly as sent, so either reading of it is
// authenticated by the device's own key (issue 11, finding 9).
func TestConnectPercentInDeviceID(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	for _, id := range []string{"dev%41x", "a%zz", "100%", "a%2Fb"} {
		key := e.device(h, id)
		for _, encode := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/encoded=%v", id, encode), func(t *testing.T) {
				d, err := e.connect(connOpts{username: "hub1.example.net/" + id + "/?api-version=2021-04-12", clientID: id,
					password: sign("hub1.example.net/devices/"+id, key, "", e.clock.Now().Add(time.Hour), encode)})
				if err != nil {
					t.Fatalf("connect: %v", err)
				}
				d.out.Close()
				d.out.wg.Wait()
			})
		}
	}
	// The raw reading of one device's sr never lets another device in: a
	// token signed with dev%41x's key does not open devAx.
	e.device(h, "devAx")
	tok := sign("hub1.example.net/devices/dev%41x", e.device(h, "dev%41y"), "", e.clock.Now().Add(time.Hour), false)
	for _, id := range []string{"devAx", "dev%41x"} {
		if _, err := e.connect(connOpts{username: "hub1.example.net/" + id + "/?api-version=2021-04-12", clientID: id, password: tok}); err == nil {
			t.Errorf("%s connected with another device's token", id)
		}
	}
}

// TestIdleConnectionsHoldNoSender: a connected device with nothing queued
// for it has no sender goroutine (at fleet scale each would hold a stack);
// a twin GET starts one, and it goes away once the answer is sent.
func TestIdleConnectionsHoldNoSender(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	const n = 100
	base := runtime.NumGoroutine()
	devs := make([]*dev, n)
	for i := range n {
		id := fmt.Sprintf("idle%03d", i)
		devs[i] = e.connectDevice(h, id, e.device(h, id))
		devs[i].sub("$iothub/twin/res/#")
	}
	idle := func(what string) {
		t.Helper()
		testwait.For(t, waitTimeout, what, func() (bool, string) {
			extra := runtime.NumGoroutine() - base
			return extra < n/10, fmt.Sprintf("%d goroutines more than before %d devices connected", extra, n)
		})
	}
	idle("connected idle devices to hold no sender goroutine")
	if err := devs[0].pub("$iothub/twin/GET/?$rid=1", ""); err != nil {
		t.Fatal(err)
	}
	if m := devs[0].next(); !strings.HasPrefix(m.topic, "$iothub/twin/res/200/?$rid=1") {
		t.Fatalf("twin GET answered on %q", m.topic)
	}
	idle("the sender to end once the twin answer is sent")
}
