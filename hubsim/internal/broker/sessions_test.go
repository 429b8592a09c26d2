package broker

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
)

// fakeClock is an injectable Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// connectFlags sends CONNECT with the given clean session flag and returns
// the CONNACK return code and session present flag as read off the wire.
func (r *rawClient) connectFlags(id, username string, clean bool) (code byte, present bool) {
	r.t.Helper()
	r.send(connectPacket(id, username, "pw", 0, clean))
	ack := r.mustRead(packets.Connack)
	return ack.ReasonCode, ack.SessionPresent
}

// disconnect sends DISCONNECT and waits until the broker has served the
// connection to its end (so its session is stored).
func (r *rawClient) disconnect(h *harness) {
	r.t.Helper()
	r.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	if err := h.nextServed(r.t); err != nil {
		r.t.Fatalf("ServeConn after DISCONNECT = %v", err)
	}
}

// subscribesSince returns the filters (with the offered QoS) given to
// Session.Subscribe of client id after its n-th connect event (1-based).
func subscribesSince(p *fakePersonality, id string, n int) map[string]byte {
	got := map[string]byte{}
	connects := 0
	for _, e := range p.rec.all() {
		if e.client != id {
			continue
		}
		switch {
		case e.kind == "connect":
			connects++
		case e.kind == "subscribe" && connects == n:
			got[e.topic] = e.qos
		}
	}
	return got
}

const sessUser = "hub.example/dev1/?api-version=1"

func TestSessionResume(t *testing.T) {
	p := newFake("hub.example/")
	h := newHarness(t, false, Config{Personalities: []Personality{p}})

	c1 := h.dialRaw(t)
	if code, present := c1.connectFlags("dev1", sessUser, false); code != 0 || present {
		t.Fatalf("first CONNACK: code %d, session present %v; want 0, false", code, present)
	}
	if got := c1.subscribe(1,
		packets.Subscription{Filter: "$iothub/methods/POST/#", Qos: 0},
		packets.Subscription{Filter: "$iothub/twin/res/#", Qos: 2}, // granted 1
	); !slices.Equal(got, []byte{0, 1}) {
		t.Fatalf("SUBACK %v", got)
	}
	c1.disconnect(h)

	c2 := h.dialRaw(t)
	if code, present := c2.connectFlags("dev1", sessUser, false); code != 0 || !present {
		t.Fatalf("resumed CONNACK: code %d, session present %v; want 0, true", code, present)
	}
	// The new Session was asked for every stored filter, with the QoS the
	// client had asked for.
	want := map[string]byte{"$iothub/methods/POST/#": 0, "$iothub/twin/res/#": 2}
	if got := subscribesSince(p, "dev1", 2); !mapsEqual(got, want) {
		t.Errorf("Session.Subscribe on resume: %v, want %v", got, want)
	}
	out := p.out(t, "dev1")
	if !out.Subscribed("$iothub/twin/res/200/?$rid=1") {
		t.Fatal("resumed subscription not live")
	}
	// Outbound.Publish works without a new SUBSCRIBE, at the QoS granted
	// before (1 for the twin, 0 for methods).
	if err := out.Publish("$iothub/twin/res/200/?$rid=1", []byte("twin"), 1); err != nil {
		t.Fatal(err)
	}
	if err := out.Publish("$iothub/methods/POST/m/?$rid=2", []byte("m"), 1); err != nil {
		t.Fatal(err)
	}
	pk := c2.mustRead(packets.Publish)
	if pk.TopicName != "$iothub/twin/res/200/?$rid=1" || pk.FixedHeader.Qos != 1 {
		t.Errorf("got %q at QoS %d", pk.TopicName, pk.FixedHeader.Qos)
	}
	pk = c2.mustRead(packets.Publish)
	if pk.TopicName != "$iothub/methods/POST/m/?$rid=2" || pk.FixedHeader.Qos != 0 {
		t.Errorf("got %q at QoS %d", pk.TopicName, pk.FixedHeader.Qos)
	}
	// An UNSUBSCRIBE is part of the session too.
	c2.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe}, PacketID: 2,
		Filters: packets.Subscriptions{{Filter: "$iothub/methods/POST/#"}}})
	c2.mustRead(packets.Unsuback)
	c2.disconnect(h)

	c3 := h.dialRaw(t)
	if _, present := c3.connectFlags("dev1", sessUser, false); !present {
		t.Fatal("third CONNACK: no session present")
	}
	if got, want := subscribesSince(p, "dev1", 3), map[string]byte{"$iothub/twin/res/#": 2}; !mapsEqual(got, want) {
		t.Errorf("Session.Subscribe after unsubscribe: %v, want %v", got, want)
	}
	if p.out(t, "dev1").Subscribed("$iothub/methods/POST/m") {
		t.Error("unsubscribed filter came back")
	}
}

func mapsEqual(a, b map[string]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestSessionCleanFlag(t *testing.T) {
	tests := []struct {
		name          string
		first, second bool // clean session flags of the two connections
		third         bool // clean flag of a third connection
		wantSecond    bool // session present on the second CONNACK
		wantThird     bool // … and on the third
	}{
		// A clean session 1 connection stores nothing at its end. The clean 0
		// one after it stores an empty session, which the third resumes
		// (session present, nothing subscribed).
		{name: "clean 1 then clean 0", first: true, second: false, third: false, wantSecond: false, wantThird: true},
		// A clean session 1 connection discards the stored session, and
		// stores none of its own, so a later clean 0 starts afresh.
		{name: "clean 0 then clean 1 then clean 0", first: false, second: true, third: false, wantSecond: false, wantThird: false},
		{name: "clean 1 twice", first: true, second: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newFake("hub.example/")
			h := newHarness(t, false, Config{Personalities: []Personality{p}})
			c := h.dialRaw(t)
			c.connectFlags("dev1", sessUser, tt.first)
			c.subscribe(1, packets.Subscription{Filter: "a/#", Qos: 1})
			c.disconnect(h)

			c = h.dialRaw(t)
			if _, present := c.connectFlags("dev1", sessUser, tt.second); present != tt.wantSecond {
				t.Errorf("second CONNACK session present %v, want %v", present, tt.wantSecond)
			}
			if !tt.wantSecond {
				if p.out(t, "dev1").Subscribed("a/b") {
					t.Error("subscription survived")
				}
				if got := subscribesSince(p, "dev1", 2); len(got) != 0 {
					t.Errorf("Session.Subscribe called on a fresh session: %v", got)
				}
			}
			c.disconnect(h)

			c = h.dialRaw(t)
			if _, present := c.connectFlags("dev1", sessUser, tt.third); present != tt.wantThird {
				t.Errorf("third CONNACK session present %v, want %v", present, tt.wantThird)
			}
			if p.out(t, "dev1").Subscribed("a/b") {
				t.Error("subscription survived a clean session")
			}
		})
	}
}

func TestSessionTakeoverClean(t *testing.T) {
	// A clean session 1 connection that takes over a clean 0 one starts
	// with nothing (and the old session is discarded, not kept for later).
	p := newFake("hub.example/")
	h := newHarness(t, false, Config{Personalities: []Personality{p}})
	old := h.dialRaw(t)
	old.connectFlags("dev1", sessUser, false)
	old.subscribe(1, packets.Subscription{Filter: "a/#", Qos: 1})

	neu := h.dialRaw(t)
	if _, present := neu.connectFlags("dev1", sessUser, true); present {
		t.Error("clean session 1 takeover: session present")
	}
	old.expectClosed()
	if p.out(t, "dev1").Subscribed("a/b") {
		t.Error("clean session 1 takeover inherited a subscription")
	}
	neu.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	// Both ServeConn results, in either order: old taken over, neu clean.
	var takenOver, clean int
	for range 2 {
		switch err := h.nextServed(t); {
		case errors.Is(err, ErrTakenOver):
			takenOver++
		case err == nil:
			clean++
		default:
			t.Errorf("ServeConn = %v", err)
		}
	}
	if takenOver != 1 || clean != 1 {
		t.Errorf("ServeConn results: %d taken over, %d clean; want 1, 1", takenOver, clean)
	}
	again := h.dialRaw(t)
	if _, present := again.connectFlags("dev1", sessUser, false); present {
		t.Error("session of the taken-over clean 0 client outlived a clean 1 connection")
	}
}

func TestSessionTakeoverPresent(t *testing.T) {
	// Clean 0 over clean 0: session present on the wire, subscription live.
	p := newFake("hub.example/")
	h := newHarness(t, false, Config{Personalities: []Personality{p}})
	old := h.dialRaw(t)
	old.connectFlags("dev1", sessUser, false)
	old.subscribe(1, packets.Subscription{Filter: "a/#", Qos: 1})
	neu := h.dialRaw(t)
	if _, present := neu.connectFlags("dev1", sessUser, false); !present {
		t.Error("takeover CONNACK: no session present")
	}
	old.expectClosed()
	if err := p.out(t, "dev1").Publish("a/b", []byte("x"), 1); err != nil {
		t.Fatalf("Publish after takeover: %v", err)
	}
	if pk := neu.mustRead(packets.Publish); pk.TopicName != "a/b" {
		t.Errorf("got %q", pk.TopicName)
	}
}

func TestSessionExpiryAndBound(t *testing.T) {
	clock := newFakeClock()
	p := newFake("hub.example/")
	h := newHarness(t, false, Config{Personalities: []Personality{p},
		SessionExpiry: time.Hour, MaxSessions: 2, Now: clock.now})

	store := func(id string) {
		t.Helper()
		c := h.dialRaw(t)
		c.connectFlags(id, "hub.example/"+id+"/?api-version=1", false)
		c.subscribe(1, packets.Subscription{Filter: "a/#", Qos: 1})
		c.disconnect(h)
	}
	present := func(id string) bool {
		t.Helper()
		c := h.dialRaw(t)
		_, ok := c.connectFlags(id, "hub.example/"+id+"/?api-version=1", true) // clean: take nothing along
		c.disconnect(h)
		return ok
	}
	resumes := func(id string) bool {
		t.Helper()
		c := h.dialRaw(t)
		_, ok := c.connectFlags(id, "hub.example/"+id+"/?api-version=1", false)
		c.disconnect(h) // stores it again
		return ok
	}

	store("d1")
	clock.advance(time.Hour - time.Second)
	if !resumes("d1") {
		t.Error("session expired before SessionExpiry")
	}
	clock.advance(time.Hour) // d1 was stored again an hour ago
	if resumes("d1") {
		t.Error("session outlived SessionExpiry")
	}
	if present("d1") {
		t.Error("clean session 1 reported session present")
	}

	// MaxSessions 2: the least recently stored goes first.
	store("d1")
	clock.advance(time.Second)
	store("d2")
	clock.advance(time.Second)
	store("d3")
	h.b.mu.Lock()
	n := h.b.stored.len()
	h.b.mu.Unlock()
	if n != 2 {
		t.Errorf("%d stored sessions, want 2", n)
	}
	// (Each check stores its session again, so the newest go first.)
	if !resumes("d3") || !resumes("d2") {
		t.Error("newer sessions dropped")
	}
	if resumes("d1") {
		t.Error("oldest session kept beyond MaxSessions")
	}
}

func TestSessionRefusedFilterDropped(t *testing.T) {
	p := newFake("hub.example/")
	h := newHarness(t, false, Config{Personalities: []Personality{p}})
	c := h.dialRaw(t)
	c.connectFlags("dev1", sessUser, false)
	c.subscribe(1, packets.Subscription{Filter: "a/#", Qos: 1}, packets.Subscription{Filter: "b/#", Qos: 1})
	c.disconnect(h)

	// The new session no longer wants b/# (say, the device lost a right).
	p.mu.Lock()
	p.refuse["b/#"] = true
	p.mu.Unlock()
	c = h.dialRaw(t)
	if _, present := c.connectFlags("dev1", sessUser, false); !present {
		t.Fatal("no session present")
	}
	out := p.out(t, "dev1")
	if !out.Subscribed("a/x") {
		t.Error("accepted filter not restored")
	}
	if out.Subscribed("b/x") {
		t.Error("refused filter restored")
	}
	if err := out.Publish("b/x", nil, 0); !errors.Is(err, ErrNotSubscribed) {
		t.Errorf("Publish to the refused filter = %v, want ErrNotSubscribed", err)
	}
	c.disconnect(h)

	// Dropped means dropped: it is not offered again.
	p.mu.Lock()
	delete(p.refuse, "b/#")
	p.mu.Unlock()
	c = h.dialRaw(t)
	c.connectFlags("dev1", sessUser, false)
	if got, want := subscribesSince(p, "dev1", 3), map[string]byte{"a/#": 1}; !mapsEqual(got, want) {
		t.Errorf("offered %v, want %v", got, want)
	}
}

func TestSessionRestorePublishFollowsConnack(t *testing.T) {
	// A Session that publishes from Subscribe while the stored subscriptions
	// are restored: the PUBLISH reaches the client after the CONNACK.
	p := newFake("hub.example/")
	h := newHarness(t, false, Config{Personalities: []Personality{p}})
	c := h.dialRaw(t)
	c.connectFlags("dev1", sessUser, false)
	c.subscribe(1, packets.Subscription{Filter: "devices/dev1/messages/devicebound/#", Qos: 1})
	c.disconnect(h)

	p.mu.Lock()
	p.push["devices/dev1/messages/devicebound/#"] = "devices/dev1/messages/devicebound/%24.mid=7"
	p.mu.Unlock()
	c = h.dialRaw(t)
	if _, present := c.connectFlags("dev1", sessUser, false); !present {
		t.Fatal("no session present")
	}
	pk := c.mustRead(packets.Publish)
	if pk.TopicName != "devices/dev1/messages/devicebound/%24.mid=7" || pk.FixedHeader.Qos != 1 {
		t.Errorf("got %q at QoS %d", pk.TopicName, pk.FixedHeader.Qos)
	}
	if e := p.rec.waitKind(t, "pushed", "dev1"); e.err != nil {
		t.Errorf("publish from Session.Subscribe during restore: %v", e.err)
	}
}

func TestPahoPersistentSession(t *testing.T) {
	p := newFake("hub.example/")
	h := newHarness(t, false, Config{Personalities: []Personality{p}})
	_, tlsCfg := testTLS(t)
	connect := func() mqtt.Client {
		t.Helper()
		opts := mqtt.NewClientOptions().AddBroker("ssl://" + h.addr).SetClientID("dev1").SetProtocolVersion(4).
			SetUsername(sessUser).SetPassword("pw").SetTLSConfig(tlsCfg).
			SetCleanSession(false).SetAutoReconnect(false).SetConnectRetry(false).
			SetConnectTimeout(waitTimeout).SetKeepAlive(60 * time.Second)
		c := mqtt.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("paho connect: %v", tok.Error())
		}
		return c
	}
	got := make(chan string, 4)
	c := connect()
	if tok := c.Subscribe("$iothub/methods/POST/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() }); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	c.Disconnect(100)
	if err := h.nextServed(t); err != nil {
		t.Fatalf("ServeConn = %v", err)
	}

	// Reconnect without subscribing again; paho routes messages of unknown
	// subscriptions to its default handler.
	opts := mqtt.NewClientOptions().AddBroker("ssl://" + h.addr).SetClientID("dev1").SetProtocolVersion(4).
		SetUsername(sessUser).SetPassword("pw").SetTLSConfig(tlsCfg).
		SetCleanSession(false).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(waitTimeout).SetKeepAlive(60 * time.Second).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() })
	c = mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("paho reconnect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if !tok.(*mqtt.ConnectToken).SessionPresent() {
		t.Error("paho saw no session present")
	}
	topic := "$iothub/methods/POST/reboot/?$rid=1"
	if err := p.out(t, "dev1").Publish(topic, []byte("{}"), 1); err != nil {
		t.Fatalf("Publish after reconnect: %v", err)
	}
	select {
	case tp := <-got:
		if tp != topic {
			t.Errorf("paho got %q, want %q", tp, topic)
		}
	case <-time.After(waitTimeout):
		t.Fatal("paho received nothing after reconnecting")
	}
}

func TestSessionStore(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	key := func(i int) clientKey { return clientKey{0, "hub", fmt.Sprint("d", i)} }
	subs := []subscription{{filter: "a/#", asked: 1, qos: 1}}

	tests := []struct {
		name string
		run  func(s *sessionStore) (ok bool, n int)
		ok   bool // take of key(0) succeeded
		n    int  // sessions left
	}{
		{"take empty", func(s *sessionStore) (bool, int) {
			_, ok := s.take(key(0), t0)
			return ok, s.len()
		}, false, 0},
		{"take once", func(s *sessionStore) (bool, int) {
			s.put(key(0), subs, t0)
			_, ok := s.take(key(0), t0)
			_, again := s.take(key(0), t0)
			return ok && !again, s.len()
		}, true, 0},
		{"expired on take", func(s *sessionStore) (bool, int) {
			s.put(key(0), subs, t0)
			_, ok := s.take(key(0), t0.Add(time.Minute))
			return ok, s.len()
		}, false, 0},
		{"swept on put", func(s *sessionStore) (bool, int) {
			s.put(key(0), subs, t0)
			s.put(key(1), subs, t0.Add(30*time.Second))
			s.put(key(2), subs, t0.Add(70*time.Second)) // key(0) expired
			_, ok := s.take(key(0), t0)
			return ok, s.len()
		}, false, 2},
		{"count bound", func(s *sessionStore) (bool, int) {
			for i := range 5 {
				s.put(key(i), subs, t0)
			}
			_, ok := s.take(key(0), t0)
			return ok, s.len()
		}, false, 3},
		{"put replaces and refreshes", func(s *sessionStore) (bool, int) {
			s.put(key(0), nil, t0)
			s.put(key(1), subs, t0)
			s.put(key(2), subs, t0)
			s.put(key(0), subs, t0) // now the most recent
			s.put(key(3), subs, t0) // evicts key(1)
			got, ok := s.take(key(0), t0)
			_, one := s.take(key(1), t0)
			return ok && len(got) == 1 && !one, s.len()
		}, true, 2},
		{"drop", func(s *sessionStore) (bool, int) {
			s.put(key(0), subs, t0)
			s.drop(key(0))
			s.drop(key(9))
			_, ok := s.take(key(0), t0)
			return ok, s.len()
		}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSessionStore(time.Minute, 3)
			ok, n := tt.run(s)
			if ok != tt.ok || n != tt.n {
				t.Errorf("ok %v, %d left; want %v, %d", ok, n, tt.ok, tt.n)
			}
			if len(s.byKey) != s.order.Len() {
				t.Errorf("index has %d keys, list %d", len(s.byKey), s.order.Len())
			}
		})
	}
}
