package broker

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no personalities", Config{}},
		{"nil personality", Config{Personalities: []Personality{nil}}},
		{"negative limit", Config{Personalities: []Personality{newFake("")}, MaxPacketSize: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Fatal("New succeeded")
			}
		})
	}
}

func TestConnack(t *testing.T) {
	tests := []struct {
		name       string
		connectErr error
		id         string
		username   string
		mutate     func(b []byte) // edits the encoded CONNECT
		want       byte
	}{
		{name: "accepted", id: "dev1", username: "hub/dev1", want: 0x00},
		{name: "bad credentials", connectErr: fmt.Errorf("sig mismatch: %w", ErrBadCredentials), id: "dev1", username: "hub/dev1", want: 0x04},
		{name: "not authorized", connectErr: fmt.Errorf("disabled: %w", ErrNotAuthorized), id: "dev1", username: "hub/dev1", want: 0x05},
		{name: "server unavailable", connectErr: ErrServerUnavailable, id: "dev1", username: "hub/dev1", want: 0x03},
		{name: "other error", connectErr: errors.New("boom"), id: "dev1", username: "hub/dev1", want: 0x03},
		{name: "unclaimed username", id: "dev1", username: "nobody/dev1", want: 0x04},
		{name: "empty client id", id: "", username: "hub/dev1", want: 0x02},
		// The protocol level byte sits right after the 2-byte length and "MQTT":
		// fixed header (2) + 2 + 4.
		{name: "MQTT 5", id: "dev1", username: "hub/dev1", mutate: func(b []byte) { b[8] = 5 }, want: 0x01},
		{name: "MQTT 3.0 level", id: "dev1", username: "hub/dev1", mutate: func(b []byte) { b[8] = 3 }, want: 0x01},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newFake("hub/")
			p.setConnectErr(tt.connectErr)
			h := newHarness(t, false, Config{Personalities: []Personality{p}})
			c := h.dialRaw(t)
			b := encodeClient(t, connectPacket(tt.id, tt.username, "secret", 60, true))
			if tt.mutate != nil {
				tt.mutate(b)
			}
			c.sendBytes(b)
			ack := c.mustRead(packets.Connack)
			if ack.ReasonCode != tt.want {
				t.Fatalf("CONNACK code 0x%02x, want 0x%02x", ack.ReasonCode, tt.want)
			}
			if ack.SessionPresent {
				t.Error("session present set")
			}
			if tt.want == 0 {
				c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
				if err := h.nextServed(t); err != nil {
					t.Errorf("ServeConn after DISCONNECT = %v, want nil", err)
				}
				return
			}
			c.expectClosed()
			err := h.nextServed(t)
			if !errors.Is(err, ErrConnectRefused) {
				t.Errorf("ServeConn = %v, want ErrConnectRefused", err)
			}
			if tt.connectErr != nil && !errors.Is(err, tt.connectErr) {
				t.Errorf("ServeConn = %v, want it to wrap %v", err, tt.connectErr)
			}
			for _, e := range p.rec.all() {
				if e.kind == "disconnected" {
					t.Errorf("Disconnected called for a refused client: %+v", e)
				}
			}
		})
	}
}

func TestConnectInfo(t *testing.T) {
	p := newFake("hub/")
	h := newHarness(t, false /* TLS */, Config{Personalities: []Personality{p}})
	h2 := newHarness(t, true /* plain */, Config{Personalities: []Personality{p}})
	_ = h2
	c := h.dialRaw(t)
	c.send(connectPacket("dev1", "hub/dev1/?api-version=2021-04-12", "SharedAccessSignature sr=x", 240, false))
	c.mustRead(packets.Connack)
	info := p.rec.waitKind(t, "connect", "dev1").info
	if info.Username != "hub/dev1/?api-version=2021-04-12" || string(info.Password) != "SharedAccessSignature sr=x" ||
		info.CleanSession || info.Keepalive != 240 || info.Transport != "mqtt" {
		t.Errorf("ConnectInfo = %+v", info)
	}
	if info.TLS == nil || !info.TLS.HandshakeComplete {
		t.Errorf("ConnectInfo.TLS = %+v, want a completed handshake", info.TLS)
	}
	if info.LocalAddr != h.addr {
		t.Errorf("LocalAddr = %q, want %q", info.LocalAddr, h.addr)
	}
	if info.Remote != c.conn.LocalAddr().String() {
		t.Errorf("Remote = %q, want %q", info.Remote, c.conn.LocalAddr().String())
	}

	// Plain TCP: TLS nil.
	c2 := h2.dialRaw(t)
	c2.send(connectPacket("dev2", "hub/dev2", "", 0, true))
	c2.mustRead(packets.Connack)
	if info := p.rec.waitKind(t, "connect", "dev2").info; info.TLS != nil || !info.CleanSession || len(info.Password) != 0 {
		t.Errorf("plain ConnectInfo = %+v", info)
	}
}

func TestRoutingByUsername(t *testing.T) {
	hub := newFake("hub.example/")
	dps := newFake("0ne000/registrations/")
	all := newFake("") // claims everything, but is asked last
	h := newHarness(t, false, Config{Personalities: []Personality{hub, dps, all}})
	for _, tc := range []struct {
		id, user string
		want     *fakePersonality
	}{
		{"dev1", "hub.example/dev1/?api-version=2021-04-12", hub},
		{"reg1", "0ne000/registrations/reg1/api-version=2019-03-31", dps},
		{"other", "elsewhere/other", all},
	} {
		c := h.dialRaw(t)
		if code := c.connect(tc.id, tc.user, 0); code != 0 {
			t.Fatalf("%s: CONNACK 0x%02x", tc.id, code)
		}
		tc.want.rec.waitKind(t, "connect", tc.id)
		for _, p := range []*fakePersonality{hub, dps, all} {
			if p == tc.want {
				continue
			}
			for _, e := range p.rec.all() {
				if e.client == tc.id {
					t.Errorf("%s reached the wrong personality (%q)", tc.id, p.prefix)
				}
			}
		}
	}
}

func TestSubscribe(t *testing.T) {
	p := newFake("hub/")
	p.refuse["devices/dev1/forbidden/#"] = true
	h := newHarness(t, false, Config{Personalities: []Personality{p}})
	c := h.dialRaw(t)
	c.connect("dev1", "hub/dev1", 0)
	codes := c.subscribe(7,
		packets.Subscription{Filter: "$iothub/twin/res/#", Qos: 1},
		packets.Subscription{Filter: "devices/dev1/forbidden/#", Qos: 1},
		packets.Subscription{Filter: "$iothub/methods/POST/#", Qos: 0},
		packets.Subscription{Filter: "a/#/b", Qos: 1}, // invalid: never reaches the session
		packets.Subscription{Filter: "$iothub/streams/POST/#", Qos: 2},
	)
	want := []byte{1, 0x80, 0, 0x80, 1}
	if !bytes.Equal(codes, want) {
		t.Fatalf("SUBACK codes % x, want % x", codes, want)
	}
	for _, e := range p.rec.all() {
		if e.kind == "subscribe" && e.topic == "a/#/b" {
			t.Error("invalid filter was passed to the session")
		}
	}
	out := p.out(t, "dev1")
	for topic, want := range map[string]bool{
		"$iothub/twin/res/200/?$rid=1":                      true,
		"$iothub/methods/POST/reboot/?$rid=2":               true,
		"devices/dev1/forbidden/x":                          false,
		"$iothub/twin/PATCH/properties/desired/?$version=2": false,
	} {
		if got := out.Subscribed(topic); got != want {
			t.Errorf("Subscribed(%q) = %v, want %v", topic, got, want)
		}
	}

	// UNSUBSCRIBE removes the filter and tells the session.
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe}, PacketID: 8,
		Filters: packets.Subscriptions{{Filter: "$iothub/methods/POST/#"}}})
	if ack := c.mustRead(packets.Unsuback); ack.PacketID != 8 {
		t.Errorf("UNSUBACK id %d", ack.PacketID)
	}
	p.rec.waitKind(t, "unsubscribe", "dev1")
	if out.Subscribed("$iothub/methods/POST/reboot/?$rid=2") {
		t.Error("still subscribed after UNSUBSCRIBE")
	}
	if err := out.Publish("$iothub/methods/POST/reboot/?$rid=3", nil, 0); !errors.Is(err, ErrNotSubscribed) {
		t.Errorf("Publish after UNSUBSCRIBE = %v, want ErrNotSubscribed", err)
	}
}

func TestClientPublish(t *testing.T) {
	p := newFake("hub/")
	p.pubErr = func(topic string) error {
		switch {
		case strings.HasPrefix(topic, "refused/"):
			return errors.New("no such route")
		case strings.HasPrefix(topic, "forbidden/"):
			return fmt.Errorf("topic not allowed: %w", ErrNotAuthorized)
		}
		return nil
	}
	h := newHarness(t, false, Config{Personalities: []Personality{p}})
	c := h.dialRaw(t)
	c.connect("dev1", "hub/dev1", 0)

	c.publish("devices/dev1/messages/events/", []byte("q0"), 0, 0)
	c.publish("devices/dev1/messages/events/a=b", []byte("q1"), 1, 42)
	if ack := c.mustRead(packets.Puback); ack.PacketID != 42 {
		t.Fatalf("PUBACK id %d, want 42", ack.PacketID)
	}
	// Refused by the session with a plain error: still PUBACKed.
	c.publish("refused/x", nil, 1, 43)
	if ack := c.mustRead(packets.Puback); ack.PacketID != 43 {
		t.Fatalf("PUBACK id %d, want 43", ack.PacketID)
	}
	var got []event
	for _, e := range p.rec.all() {
		if e.kind == "publish" {
			got = append(got, e)
		}
	}
	if len(got) != 3 || string(got[0].payload) != "q0" || got[0].qos != 0 ||
		got[1].topic != "devices/dev1/messages/events/a=b" || string(got[1].payload) != "q1" || got[1].qos != 1 {
		t.Fatalf("session publishes = %+v", got)
	}

	// Refused with ErrNotAuthorized: no PUBACK, disconnected.
	c.publish("forbidden/x", nil, 1, 44)
	c.expectClosed()
	if e := p.rec.waitKind(t, "disconnected", "dev1"); !errors.Is(e.err, ErrNotAuthorized) {
		t.Errorf("Disconnected(%v), want ErrNotAuthorized", e.err)
	}
}

func TestClientProtocolViolations(t *testing.T) {
	tests := []struct {
		name string
		send func(c *rawClient)
	}{
		{"QoS 2 publish", func(c *rawClient) { c.publish("a/b", nil, 2, 1) }},
		{"wildcard topic", func(c *rawClient) { c.publish("a/+", nil, 0, 0) }},
		{"second CONNECT", func(c *rawClient) { c.send(connectPacket("dev1", "hub/dev1", "", 0, true)) }},
		{"PUBREL", func(c *rawClient) { c.sendBytes([]byte{0x62, 0x02, 0x00, 0x01}) }},
		{"oversized packet", func(c *rawClient) { c.sendBytes([]byte{0x30, 0xff, 0xff, 0x7f}) }},
		{"five-byte length", func(c *rawClient) { c.sendBytes([]byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}) }},
		{"server-only packet", func(c *rawClient) { c.sendBytes([]byte{0xd0, 0x00}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newFake("hub/")
			h := newHarness(t, true, Config{Personalities: []Personality{p}, MaxPacketSize: 64 << 10})
			c := h.dialRaw(t)
			c.connect("dev1", "hub/dev1", 0)
			tt.send(c)
			c.expectClosed()
			e := p.rec.waitKind(t, "disconnected", "dev1")
			if !errors.Is(e.err, ErrProtocol) && !errors.Is(e.err, ErrPacketTooLarge) {
				t.Errorf("Disconnected(%v), want a protocol error", e.err)
			}
		})
	}
}

func TestFirstPacketMustBeConnect(t *testing.T) {
	p := newFake("hub/")
	h := newHarness(t, true, Config{Personalities: []Personality{p}})
	c := h.dialRaw(t)
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	c.expectClosed()
	if err := h.nextServed(t); !errors.Is(err, ErrProtocol) {
		t.Errorf("ServeConn = %v, want ErrProtocol", err)
	}
}

func TestPingreq(t *testing.T) {
	p := newFake("hub/")
	h := newHarness(t, true, Config{Personalities: []Personality{p}})
	c := h.dialRaw(t)
	c.connect("dev1", "hub/dev1", 30)
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	c.mustRead(packets.Pingresp)
}

func TestOutboundPublishReachesOnlyThatClient(t *testing.T) {
	p := newFake("hub/")
	h := newHarness(t, true, Config{Personalities: []Personality{p}})
	a, b := h.dialRaw(t), h.dialRaw(t)
	for id, c := range map[string]*rawClient{"devA": a, "devB": b} {
		c.connect(id, "hub/"+id, 0)
		c.subscribe(1, packets.Subscription{Filter: "$iothub/twin/res/#", Qos: 1})
	}
	outA, outB := p.out(t, "devA"), p.out(t, "devB")

	const n = 50
	for i := range n {
		topic := fmt.Sprintf("$iothub/twin/res/200/?$rid=%d", i)
		if err := outA.Publish(topic, []byte(fmt.Sprint(i)), 1); err != nil {
			t.Fatal(err)
		}
	}
	// A marker for B, sent after all of A's: B must see it first.
	if err := outB.Publish("$iothub/twin/res/204/?$rid=marker", nil, 0); err != nil {
		t.Fatal(err)
	}
	if pk := b.mustRead(packets.Publish); pk.TopicName != "$iothub/twin/res/204/?$rid=marker" || pk.FixedHeader.Qos != 0 {
		t.Fatalf("B got %q (QoS %d), want only its marker", pk.TopicName, pk.FixedHeader.Qos)
	}
	seen := map[uint16]bool{}
	for i := range n {
		pk := a.mustRead(packets.Publish)
		if want := fmt.Sprintf("$iothub/twin/res/200/?$rid=%d", i); pk.TopicName != want || string(pk.Payload) != fmt.Sprint(i) {
			t.Fatalf("A message %d: %q %q, want %q in order", i, pk.TopicName, pk.Payload, want)
		}
		if pk.FixedHeader.Qos != 1 || pk.PacketID == 0 || seen[pk.PacketID] {
			t.Fatalf("A message %d: QoS %d id %d", i, pk.FixedHeader.Qos, pk.PacketID)
		}
		seen[pk.PacketID] = true
		a.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	}
	// PUBACKs clear the in-flight table (a ping round trip orders it after them).
	a.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	a.mustRead(packets.Pingresp)
	ca := outA.(*client)
	ca.mu.Lock()
	left := len(ca.inflight)
	ca.mu.Unlock()
	if left != 0 {
		t.Errorf("%d packets still in flight after PUBACKs", left)
	}
}

func TestOutboundQoSCappedAtGrant(t *testing.T) {
	p := newFake("hub/")
	h := newHarness(t, true, Config{Personalities: []Personality{p}})
	c := h.dialRaw(t)
	c.connect("dev1", "hub/dev1", 0)
	c.subscribe(1, packets.Subscription{Filter: "$iothub/methods/POST/#", Qos: 0})
	if err := p.out(t, "dev1").Publish("$iothub/methods/POST/m/?$rid=1", []byte("null"), 1); err != nil {
		t.Fatal(err)
	}
	if pk := c.mustRead(packets.Publish); pk.FixedHeader.Qos != 0 || pk.PacketID != 0 {
		t.Errorf("QoS %d id %d, want QoS 0 (granted)", pk.FixedHeader.Qos, pk.PacketID)
	}
}

func TestOutboundErrors(t *testing.T) {
	p := newFake("hub/")
	h := newHarness(t, true, Config{Personalities: []Personality{p}})
	c := h.dialRaw(t)
	c.connect("dev1", "hub/dev1", 0)
	c.subscribe(1, packets.Subscription{Filter: "devices/dev1/messages/devicebound/#", Qos: 1})
	out := p.out(t, "dev1")

	tests := []struct {
		topic string
		qos   byte
		want  error // nil: any error
	}{
		{"devices/dev2/messages/devicebound/x", 1, ErrNotSubscribed},
		{"devices/dev1/messages/devicebound/+", 1, nil},
		{"", 0, nil},
		{"devices/dev1/messages/devicebound/x", 3, nil},
	}
	for _, tt := range tests {
		err := out.Publish(tt.topic, nil, tt.qos)
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("Publish(%q, qos %d) = %v, want %v", tt.topic, tt.qos, err, tt.want)
		}
	}

	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	if e := p.rec.waitKind(t, "disconnected", "dev1"); e.err != nil {
		t.Errorf("Disconnected(%v) after DISCONNECT, want nil", e.err)
	}
	if err := out.Publish("devices/dev1/messages/devicebound/x", nil, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after disconnect = %v, want ErrClosed", err)
	}
	if out.Subscribed("devices/dev1/messages/devicebound/x") {
		t.Error("Subscribed true after disconnect")
	}
	out.Close() // idempotent on a gone client
}

func TestOutboundClose(t *testing.T) {
	p := newFake("hub/")
	h := newHarness(t, true, Config{Personalities: []Personality{p}})
	c := h.dialRaw(t)
	c.connect("dev1", "hub/dev1", 0)
	out := p.out(t, "dev1")
	out.Close()
	out.Close()
	c.expectClosed()
	if e := p.rec.waitKind(t, "disconnected", "dev1"); !errors.Is(e.err, ErrServerDisconnect) {
		t.Errorf("Disconnected(%v), want ErrServerDisconnect", e.err)
	}
}

func TestTakeover(t *testing.T) {
	hub, dps := newFake("hub"), newFake("dps/")
	h := newHarness(t, false, Config{Personalities: []Personality{hub, dps}})
	old := h.dialRaw(t)
	old.connect("dev1", "hub1.example/dev1/?api-version=1", 0)
	old.subscribe(1, packets.Subscription{Filter: "a/#", Qos: 1})
	oldOut := hub.out(t, "dev1")

	// The same id at the other personality is someone else, and so is the
	// same id at another hub (realm) of the same personality.
	other := h.dialRaw(t)
	other.connect("dev1", "dps/dev1", 0)
	otherHub := h.dialRaw(t)
	otherHub.connect("dev1", "hub2.example/dev1/?api-version=1", 0)

	// A wrong password must not kick the connected client.
	hub.setConnectErr(ErrBadCredentials)
	bad := h.dialRaw(t)
	if code := bad.connect("dev1", "hub1.example/dev1/?api-version=1", 0); code != 0x04 {
		t.Fatalf("CONNACK 0x%02x", code)
	}
	hub.setConnectErr(nil)
	if !oldOut.Subscribed("a/b") {
		t.Fatal("old client gone after a refused takeover")
	}

	neu := h.dialRaw(t)
	// Realms compare without case; the rest of the username may differ.
	if code := neu.connect("dev1", "hub1.EXAMPLE/dev1/?api-version=2", 0); code != 0 {
		t.Fatalf("CONNACK 0x%02x", code)
	}
	old.expectClosed()
	// Disconnected of the old session came before the new CONNACK.
	evs := hub.rec.all()
	var connects, disc int
	for i, e := range evs {
		switch e.kind {
		case "connect":
			connects = i
		case "disconnected":
			disc = i
			if !errors.Is(e.err, ErrTakenOver) {
				t.Errorf("old Disconnected(%v), want ErrTakenOver", e.err)
			}
		}
	}
	if disc == 0 || disc < connects {
		t.Errorf("events %+v: want the new connect, then the old disconnected", evs)
	}
	if err := oldOut.Publish("a/b", nil, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("old Outbound.Publish = %v, want ErrClosed", err)
	}
	// Both connected with clean session 0: the new connection resumed the
	// old one's session, so its subscription is live and its Session was
	// asked for it again.
	if !hub.out(t, "dev1").Subscribed("a/b") {
		t.Error("new connection lost the subscription of the session it took over")
	}
	var subs int
	for _, e := range hub.rec.all() {
		if e.kind == "subscribe" && e.client == "dev1" && e.topic == "a/#" {
			subs++
		}
	}
	if subs != 2 {
		t.Errorf("Session.Subscribe(a/#) called %d times, want 2 (SUBSCRIBE, then resume)", subs)
	}
	// The clients of the other personality and the other hub are untouched.
	for _, c := range []*rawClient{other, otherHub} {
		c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
		c.mustRead(packets.Pingresp)
	}
}

func TestPublishDuringSubscribe(t *testing.T) {
	p := newFake("hub/")
	p.push["devices/dev1/messages/devicebound/#"] = "devices/dev1/messages/devicebound/%24.mid=1"
	p.push["refused/#"] = "refused/x"
	p.refuse["refused/#"] = true
	h := newHarness(t, true, Config{Personalities: []Personality{p}})
	c := h.dialRaw(t)
	c.connect("dev1", "hub/dev1", 0)
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: 5, Filters: packets.Subscriptions{
		{Filter: "devices/dev1/messages/devicebound/#", Qos: 1}, {Filter: "refused/#", Qos: 1}}})
	// MQTT 3.1.1 §3.8.4 allows matching PUBLISHes before the SUBACK.
	if pk := c.mustRead(packets.Publish); pk.TopicName != "devices/dev1/messages/devicebound/%24.mid=1" || pk.FixedHeader.Qos != 1 {
		t.Fatalf("got %q QoS %d", pk.TopicName, pk.FixedHeader.Qos)
	}
	if pk := c.mustRead(packets.Publish); pk.TopicName != "refused/x" {
		t.Fatalf("got %q", pk.TopicName)
	}
	if ack := c.mustRead(packets.Suback); string(ack.ReasonCodes) != "\x01\x80" {
		t.Fatalf("SUBACK % x", ack.ReasonCodes)
	}
	if p.out(t, "dev1").Subscribed("refused/x") {
		t.Error("refused filter still live after SUBACK")
	}
}

func TestKeepaliveDrop(t *testing.T) {
	t.Parallel()
	p := newFake("hub/")
	h := newHarness(t, true, Config{Personalities: []Personality{p}})
	c := h.dialRaw(t)
	start := time.Now()
	c.connect("dev1", "hub/dev1", 1) // dropped after 1.5 s of silence
	c.expectClosed()
	if e := p.rec.waitKind(t, "disconnected", "dev1"); !errors.Is(e.err, ErrKeepaliveTimeout) {
		t.Errorf("Disconnected(%v), want ErrKeepaliveTimeout", e.err)
	}
	if err := h.nextServed(t); !errors.Is(err, ErrKeepaliveTimeout) {
		t.Errorf("ServeConn = %v, want ErrKeepaliveTimeout", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("dropped after %v, before 1.5 × keepalive", d)
	}
}

func TestCloseDisconnectsEveryone(t *testing.T) {
	p := newFake("hub/")
	h := newHarness(t, false, Config{Personalities: []Personality{p}})
	var cs []*rawClient
	for i := range 3 {
		c := h.dialRaw(t)
		c.connect(fmt.Sprint("dev", i), fmt.Sprint("hub/dev", i), 0)
		cs = append(cs, c)
	}
	idle := h.dialRaw(t) // TLS done, never sends CONNECT
	if err := idle.conn.(interface{ Handshake() error }).Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := h.b.Close(); err != nil {
		t.Fatal(err)
	}
	for i, c := range cs {
		c.expectClosed()
		if e := p.rec.waitKind(t, "disconnected", fmt.Sprint("dev", i)); !errors.Is(e.err, ErrBrokerClosed) {
			t.Errorf("Disconnected(%v), want ErrBrokerClosed", e.err)
		}
	}
	idle.expectClosed()
	if err := h.b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	a, b := net.Pipe()
	defer b.Close()
	if err := h.b.ServeConn(t.Context(), a, "mqtt"); !errors.Is(err, ErrBrokerClosed) {
		t.Errorf("ServeConn after Close = %v, want ErrBrokerClosed", err)
	}
}

func TestServeConnContext(t *testing.T) {
	p := newFake("hub/")
	b, err := New(Config{Personalities: []Personality{p}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	srv, cli := net.Pipe()
	defer cli.Close()
	ctx, cancel := contextWithCancel(t)
	done := make(chan error, 1)
	go func() { done <- b.ServeConn(ctx, srv, "mqtt") }()
	rc := &rawClient{t: t, conn: cli, br: newReader(cli)}
	rc.connect("dev1", "hub/dev1", 0)
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("ServeConn returned nil after cancel")
		}
	case <-time.After(waitTimeout):
		t.Fatal("ServeConn did not return after cancel")
	}
	p.rec.waitKind(t, "disconnected", "dev1")
}

// servePipe serves one client, dev1 subscribed to x/# at QoS 0, over
// net.Pipe: unbuffered, so nothing the broker writes moves unless the
// client reads. done gets ServeConn's result.
func servePipe(t *testing.T, cfg Config) (rc *rawClient, done <-chan error) {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	srv, cli := net.Pipe()
	t.Cleanup(func() { cli.Close() })
	served := make(chan error, 1)
	go func() { served <- b.ServeConn(t.Context(), srv, "mqtt") }() // ends when the client goes or the broker closes
	rc = &rawClient{t: t, conn: cli, br: newReader(cli)}
	rc.connect("dev1", "hub/dev1", 0)
	rc.subscribe(1, packets.Subscription{Filter: "x/#", Qos: 0})
	return rc, served
}

func TestSlowConsumerDropped(t *testing.T) {
	p := newFake("hub/")
	_, done := servePipe(t, Config{Personalities: []Personality{p}, MaxQueuedBytes: 4 << 10, WriteTimeout: waitTimeout})
	out := p.out(t, "dev1")
	payload := make([]byte, 1024)
	var perr error
	for range 100 {
		if perr = out.Publish("x/y", payload, 0); perr != nil {
			break
		}
	}
	if !errors.Is(perr, ErrSlowConsumer) || !errors.Is(perr, ErrClosed) {
		t.Fatalf("Publish to a stalled client = %v, want ErrClosed and ErrSlowConsumer", perr)
	}
	if e := p.rec.waitKind(t, "disconnected", "dev1"); !errors.Is(e.err, ErrSlowConsumer) {
		t.Errorf("Disconnected(%v), want ErrSlowConsumer", e.err)
	}
	<-done
}

func TestPublishAcked(t *testing.T) {
	p := newFake("hub/")
	h := newHarness(t, true, Config{Personalities: []Personality{p}})
	c := h.dialRaw(t)
	c.connect("dev1", "hub/dev1", 0)
	c.subscribe(1, packets.Subscription{Filter: "devices/dev1/messages/devicebound/#", Qos: 1},
		packets.Subscription{Filter: "q0/#", Qos: 0})
	out, ok := p.out(t, "dev1").(AckOutbound)
	if !ok {
		t.Fatal("Outbound does not implement AckOutbound")
	}
	ack := func(name string) func(bool) {
		return func(ok bool) {
			p.rec.add(event{kind: "acked", client: name, err: map[bool]error{false: ErrClosed}[ok]})
		}
	}

	if err := out.PublishAcked("devices/dev1/messages/devicebound/%24.mid=1", []byte("m1"), ack("m1")); err != nil {
		t.Fatal(err)
	}
	pk := c.mustRead(packets.Publish)
	if pk.FixedHeader.Qos != 1 {
		t.Fatalf("QoS %d", pk.FixedHeader.Qos)
	}
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	if e := p.rec.waitKind(t, "acked", "m1"); e.err != nil {
		t.Errorf("m1 acked(false), want true")
	}

	// Granted QoS 0: acknowledged before PublishAcked returns.
	if err := out.PublishAcked("q0/x", nil, ack("q0")); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range p.rec.all() {
		found = found || (e.kind == "acked" && e.client == "q0" && e.err == nil)
	}
	if !found {
		t.Error("QoS 0 PublishAcked did not call acked(true) before returning")
	}
	// Refused: the callback is never called.
	if err := out.PublishAcked("elsewhere/x", nil, ack("never")); !errors.Is(err, ErrNotSubscribed) {
		t.Errorf("PublishAcked = %v, want ErrNotSubscribed", err)
	}

	// Never acknowledged: acked(false) when the client goes, before Disconnected.
	if err := out.PublishAcked("devices/dev1/messages/devicebound/%24.mid=2", []byte("m2"), ack("m2")); err != nil {
		t.Fatal(err)
	}
	c.mustRead(packets.Publish)
	c.conn.Close()
	p.rec.waitKind(t, "disconnected", "dev1")
	var order []string
	for _, e := range p.rec.all() {
		switch {
		case e.kind == "acked" && e.client == "m2":
			if e.err == nil {
				t.Error("m2 acked(true) without a PUBACK")
			}
			order = append(order, "m2")
		case e.kind == "disconnected":
			order = append(order, "disconnected")
		case e.kind == "acked" && e.client == "never":
			t.Error("callback of a refused PublishAcked was called")
		}
	}
	if strings.Join(order, ",") != "m2,disconnected" {
		t.Errorf("order %v, want acked(false) before Disconnected", order)
	}
}

func TestConnectTimeout(t *testing.T) {
	p := newFake("hub/")
	h := newHarness(t, true, Config{Personalities: []Personality{p}, ConnectTimeout: 100 * time.Millisecond})
	c := h.dialRaw(t) // sends nothing
	c.expectClosed()
	if err := h.nextServed(t); err == nil || errors.Is(err, ErrConnectRefused) {
		t.Errorf("ServeConn = %v, want a read timeout before CONNECT", err)
	}
	if evs := p.rec.all(); len(evs) != 0 {
		t.Errorf("personality saw %+v", evs)
	}
}

// TestPubackBehindQueuedPublish: a PUBACK never overtakes a packet queued
// for the client before it; while the writer is stuck on a client that does
// not read, the PUBACK waits behind the queued PUBLISH.
func TestPubackBehindQueuedPublish(t *testing.T) {
	p := newFake("hub/")
	rc, done := servePipe(t, Config{Personalities: []Personality{p}, WriteTimeout: waitTimeout})
	if err := p.out(t, "dev1").Publish("x/y", []byte("first"), 0); err != nil {
		t.Fatal(err)
	}
	rc.publish("devices/dev1/messages/events/", []byte("m"), 1, 9)
	if pub := rc.mustRead(packets.Publish); pub.TopicName != "x/y" || string(pub.Payload) != "first" {
		t.Fatalf("first packet: PUBLISH %q %q, want x/y \"first\"", pub.TopicName, pub.Payload)
	}
	if ack := rc.mustRead(packets.Puback); ack.PacketID != 9 {
		t.Fatalf("PUBACK id %d, want 9", ack.PacketID)
	}
	rc.conn.Close()
	<-done
}
