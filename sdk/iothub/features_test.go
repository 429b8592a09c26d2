package iothub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"testing"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/auth"
	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/stream"
)

func TestX509(t *testing.T) {
	e := newEnv(t)
	cert := e.sim.SelfSignedCertificate("dev-x509")
	e.service(t).createX509Device(testCtx(t), "dev-x509", auth.ThumbprintSHA256(cert.Leaf))
	cfg := e.config(t)
	cfg.DeviceID = "dev-x509"
	cfg.SharedAccessKey = ""
	cfg.Certificate = &cert
	c := e.dial(t, cfg)
	if _, err := c.GetTwin(testCtx(t)); err != nil {
		t.Fatalf("GetTwin: %v", err)
	}
	if !e.hub.Connected("dev-x509", "") {
		t.Fatal("hub does not see the X.509 device connected")
	}
}

func TestConnectRefused(t *testing.T) {
	e := newEnv(t)
	disabled := "dev-disabled"
	disabledKey := e.sim.CreateDevice(e.host, disabled)
	if err := e.hub.SetStatus(context.Background(), disabled, "disabled"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"wrong key", func(c *Config) { c.SharedAccessKey = hubsimtest.NewKey(t) }},
		{"unknown device", func(c *Config) { c.DeviceID = "nobody" }},
		{"disabled device", func(c *Config) { c.DeviceID, c.SharedAccessKey = disabled, disabledKey }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.config(t)
			tt.edit(&cfg)
			c, err := Dial(testCtx(t), cfg)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			var ce *ConnectError
			if !errors.As(err, &ce) {
				t.Fatalf("Dial error %v (%T) is not a *ConnectError", err, err)
			}
			if ce.HTTPStatus() != http.StatusUnauthorized {
				t.Errorf("HTTPStatus = %d, want 401", ce.HTTPStatus())
			}
			if d := retry.Classify(err); d.Kind != retry.Permanent {
				t.Errorf("retry.Classify = %v, want permanent", d.Kind)
			}
		})
	}
}

func TestDesiredInOrder(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, e.config(t))
	type delivery struct {
		patch   map[string]any
		version int
	}
	got := make(chan delivery, 100)
	c.OnDesired(func(p map[string]any, v int) { got <- delivery{p, v} })
	ctx := testCtx(t)
	if err := c.WaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}
	svc := e.service(t)
	// First delivery: the whole desired document.
	first := recv(t, got)
	for i := 1; i <= 20; i++ {
		svc.patchDesired(ctx, e.device, map[string]any{"n": i})
	}
	last := first.version
	for i := 1; i <= 20; i++ {
		d := recv(t, got)
		if d.version != last+1 {
			t.Fatalf("delivery %d: version %d after %d", i, d.version, last)
		}
		last = d.version
		if d.patch["n"] != float64(i) {
			t.Fatalf("delivery %d: patch %v, want n=%d", i, d.patch, i)
		}
		if _, ok := d.patch["$version"]; ok {
			t.Fatal("patch carries $version")
		}
	}
	tw, err := c.GetTwin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tw.DesiredVersion != last || tw.Desired["n"] != float64(20) {
		t.Fatalf("twin desired %v at %d, want n=20 at %d", tw.Desired, tw.DesiredVersion, last)
	}
}

func TestMethods(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, e.config(t))
	c.OnMethod("echo", func(_ context.Context, p json.RawMessage) (int, any) {
		var in map[string]any
		if err := json.Unmarshal(p, &in); err != nil {
			return 400, map[string]string{"error": err.Error()}
		}
		return 201, map[string]any{"echo": in}
	})
	ctx := testCtx(t)
	if err := c.WaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}
	svc := e.service(t)
	tests := []struct {
		method     string
		payload    string
		wantStatus int
		wantBody   string
	}{
		{"echo", `{"a":1}`, 201, `{"echo":{"a":1}}`},
		{"echo", `null`, 201, `{"echo":null}`},
		{"nope", `{}`, StatusMethodNotImplemented, `null`},
	}
	for _, tt := range tests {
		res := svc.invoke(ctx, e.device, tt.method, json.RawMessage(tt.payload))
		if res.Status != tt.wantStatus || !jsonEqual(t, res.Payload, []byte(tt.wantBody)) {
			t.Errorf("%s(%s) = %d %s, want %d %s", tt.method, tt.payload, res.Status, res.Payload, tt.wantStatus, tt.wantBody)
		}
	}
}

func TestTelemetry(t *testing.T) {
	e := newEnv(t)
	events, cancel := e.hub.Subscribe(10)
	defer cancel()
	c := e.dial(t, e.config(t))
	ctx := testCtx(t)
	err := c.SendEvent(ctx, []byte(`{"t":21.5}`),
		WithProperty("alert", "a&b=c/d"), WithProperty("n", "1"),
		WithContentType("application/json"), WithContentEncoding("utf-8"),
		WithMessageID("m-1"), WithCorrelationID("c 1"))
	if err != nil {
		t.Fatal(err)
	}
	ev := recv(t, events)
	if ev.DeviceID != e.device || string(ev.Body) != `{"t":21.5}` {
		t.Fatalf("event %+v", ev)
	}
	wantSys := map[string]string{"$.ct": "application/json", "$.ce": "utf-8", "$.mid": "m-1", "$.cid": "c 1"}
	for k, v := range wantSys {
		if ev.System[k] != v {
			t.Errorf("system %s = %q, want %q (all: %v)", k, ev.System[k], v, ev.System)
		}
	}
	if want := map[string]string{"alert": "a&b=c/d", "n": "1"}; !reflect.DeepEqual(ev.Properties, want) {
		t.Errorf("properties %v, want %v", ev.Properties, want)
	}
	if err := c.SendEvent(ctx, nil, WithProperty("$bad", "x")); err == nil {
		t.Error("SendEvent accepted a property named $bad")
	}
}

func TestC2D(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, e.config(t))
	got := make(chan Message, 10)
	c.OnC2D(func(m Message) { got <- m })
	ctx := testCtx(t)
	if err := c.WaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}
	err := e.hub.SendC2D(ctx, e.device, hubsimtest.C2DMessage{
		MessageID: "mid-1", CorrelationID: "cid-1", ContentType: "text/plain",
		Properties: map[string]string{"k": "v&w", "x": ""},
		Body:       []byte("hello device"),
	})
	if err != nil {
		t.Fatal(err)
	}
	m := recv(t, got)
	if string(m.Payload) != "hello device" || m.MessageID != "mid-1" || m.CorrelationID != "cid-1" || m.ContentType != "text/plain" {
		t.Errorf("message %+v", m)
	}
	if m.Properties["k"] != "v&w" {
		t.Errorf("properties %v, want k=v&w", m.Properties)
	}
}

func TestStreams(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, e.config(t))
	served := make(chan error, 1)
	problems := make(chan error, 10)
	c.OnStreamRequest(func(ctx context.Context, req *StreamRequest) {
		switch req.Name {
		case "echo":
			conn, err := req.Accept(ctx)
			if err != nil {
				served <- err
				return
			}
			defer conn.Close()
			_, err = io.Copy(conn, conn)
			served <- err
		case "silent":
			// left unanswered: the client rejects it
		default:
			if err := req.Reject(ctx); err != nil {
				problems <- err
			}
			if _, err := req.Accept(ctx); !errors.Is(err, ErrStreamAnswered) {
				problems <- fmt.Errorf("second answer: %v, want ErrStreamAnswered", err)
			}
		}
	})
	ctx := testCtx(t)
	if err := c.WaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}
	svc := e.service(t)
	for _, name := range []string{"ssh", "silent"} {
		if res := svc.requestStream(ctx, e.device, name); res.Accepted {
			t.Fatalf("%s: accepted", name)
		}
	}
	res := svc.requestStream(ctx, e.device, "echo")
	if !res.Accepted {
		t.Fatal("echo stream rejected")
	}
	conn, err := stream.Dial(ctx, res.URL, res.Token, stream.DialOptions{
		TLSConfig: e.sim.TLSConfig(), NetDialContext: e.sim.DialContext,
	})
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("porthole "), 10000)
	go func() { _, _ = conn.Write(msg) }()
	back := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, msg) {
		t.Fatal("echo differs")
	}
	conn.Close()
	if err := recv(t, served); err != nil {
		t.Logf("device side ended with %v", err)
	}
	close(problems)
	for err := range problems {
		t.Error(err)
	}
}

func TestModule(t *testing.T) {
	e := newEnv(t)
	svc := e.service(t)
	ctx := testCtx(t)
	key := hubsimtest.NewKey(t)
	svc.createModule(ctx, e.device, "agent", key)
	events, cancel := e.hub.Subscribe(10)
	defer cancel()
	cfg := e.config(t)
	cfg.ModuleID = "agent"
	cfg.SharedAccessKey = key
	c := e.dial(t, cfg)
	c.OnMethod("who", func(context.Context, json.RawMessage) (int, any) { return 200, "module" })
	c.OnC2D(func(Message) { t.Error("module got a C2D message") })
	if err := c.WaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}
	if res := svc.invokeModule(ctx, e.device, "agent", "who", nil); res.Status != 200 || string(res.Payload) != `"module"` {
		t.Fatalf("module method: %d %s", res.Status, res.Payload)
	}
	if _, err := c.UpdateReported(ctx, map[string]any{"m": true}); err != nil {
		t.Fatal(err)
	}
	if err := c.SendEvent(ctx, []byte("m")); err != nil {
		t.Fatal(err)
	}
	if ev := recv(t, events); ev.DeviceID != e.device || ev.ModuleID != "agent" {
		t.Fatalf("event from %s/%s", ev.DeviceID, ev.ModuleID)
	}
}
