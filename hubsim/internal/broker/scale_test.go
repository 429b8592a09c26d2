package broker

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/porthole-iot/porthole/sdk/testwait"
)

// countingPersonality answers like a hub with nothing to say: it counts.
type countingPersonality struct {
	publishes, disconnects atomic.Int64
	mu                     sync.Mutex
	outs                   map[string]Outbound // guarded by mu
}

func (p *countingPersonality) Claims(string) bool { return true }
func (p *countingPersonality) Connect(info ConnectInfo, out Outbound) (Session, error) {
	p.mu.Lock()
	p.outs[info.ClientID] = out
	p.mu.Unlock()
	return countingSession{p}, nil
}

type countingSession struct{ p *countingPersonality }

func (s countingSession) Subscribe(_ string, qos byte) (byte, bool) { return qos, true }
func (s countingSession) Unsubscribe(string)                        {}
func (s countingSession) Publish(string, []byte, byte) error {
	s.p.publishes.Add(1)
	return nil
}
func (s countingSession) Disconnected(error) { s.p.disconnects.Add(1) }

// TestManyClients connects 1,000 clients at once; each subscribes to the
// same filter, publishes at QoS 1, and then receives exactly its own reply.
func TestManyClients(t *testing.T) {
	const n = 1000
	p := &countingPersonality{outs: map[string]Outbound{}}
	// Plain TCP: this measures the broker, not 2,000 TLS handshakes under -race.
	h := newHarness(t, true, Config{Personalities: []Personality{p}, Logger: discardLogger()})

	type conn struct {
		id string
		c  net.Conn
		br *bufio.Reader
	}
	base := runtime.NumGoroutine()
	conns := make([]*conn, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("dev%04d", i)
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				errs <- err
				return
			}
			_ = c.SetDeadline(time.Now().Add(2 * waitTimeout))
			cn := &conn{id: id, c: c, br: bufio.NewReader(c)}
			conns[i] = cn
			if err := smokeRoundTrip(t, cn.c, cn.br, id); err != nil {
				errs <- fmt.Errorf("%s: %w", id, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	defer func() {
		for _, cn := range conns {
			if cn != nil {
				cn.c.Close()
			}
		}
	}()
	if got := p.publishes.Load(); got != n {
		t.Fatalf("sessions got %d publishes, want %d", got, n)
	}
	// Idle clients (CONNACK, SUBACK and PUBACK written) keep only their
	// reader: no writer goroutine waits for packets that may never come.
	testwait.For(t, waitTimeout, "idle clients to hold one goroutine each", func() (bool, string) {
		extra := runtime.NumGoroutine() - base
		return extra <= n+n/10, fmt.Sprintf("%d goroutines more than before %d clients connected", extra, n)
	})

	// Every client is connected and subscribed to the same filter; each gets
	// only its own reply.
	p.mu.Lock()
	for _, cn := range conns {
		if err := p.outs[cn.id].Publish("$iothub/twin/res/200/?$rid="+cn.id, []byte(cn.id), 1); err != nil {
			p.mu.Unlock()
			t.Fatal(err)
		}
	}
	p.mu.Unlock()
	errs = make(chan error, n)
	for _, cn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pk, err := readServerPacket(cn.br)
			switch {
			case err != nil:
				errs <- fmt.Errorf("%s: %w", cn.id, err)
				return
			case pk.TopicName != "$iothub/twin/res/200/?$rid="+cn.id || string(pk.Payload) != cn.id:
				errs <- fmt.Errorf("%s got %q", cn.id, pk.TopicName)
				return
			}
			_, err = cn.c.Write(encodeClient(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}}))
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for range n {
		if err := h.nextServed(t); err != nil {
			t.Fatalf("ServeConn = %v, want nil after DISCONNECT", err)
		}
	}
	if got := p.disconnects.Load(); got != n {
		t.Errorf("%d Disconnected calls, want %d", got, n)
	}
}

// smokeRoundTrip connects, subscribes and publishes once at QoS 1. It runs
// off the test goroutine, so it returns errors instead of failing.
func smokeRoundTrip(t *testing.T, c net.Conn, br *bufio.Reader, id string) error {
	steps := []struct {
		send packets.Packet
		want byte
	}{
		{connectPacket(id, "hub/"+id, "pw", 0, false), packets.Connack},
		{packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: 1,
			Filters: packets.Subscriptions{{Filter: "$iothub/twin/res/#", Qos: 1}}}, packets.Suback},
		{packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 2,
			TopicName: "devices/" + id + "/messages/events/", Payload: []byte("hello")}, packets.Puback},
	}
	for _, s := range steps {
		if _, err := c.Write(encodeClient(t, s.send)); err != nil {
			return err
		}
		pk, err := readServerPacket(br)
		if err != nil {
			return err
		}
		if pk.FixedHeader.Type != s.want {
			return fmt.Errorf("got %s, want %s", packetName(pk.FixedHeader.Type), packetName(s.want))
		}
		if s.want == packets.Connack && pk.ReasonCode != 0 {
			return errors.New("connect refused")
		}
	}
	return nil
}

// TestIdleClientsHoldNoReadBuffer: a client's read buffer exists only while
// a packet is being read. Idle connected clients hold none, also after
// packets that arrived together (the second is left buffered after the
// first), over TLS and plain TCP. Before, every connection kept a 512-byte
// bufio.Reader for its lifetime.
func TestIdleClientsHoldNoReadBuffer(t *testing.T) {
	tests := []struct {
		name     string
		plain    bool
		together bool // SUBSCRIBE and PUBLISH in one write
	}{
		{"tls", false, false},
		{"tls, packets together", false, true},
		{"tcp", true, false},
		{"tcp, packets together", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 20
			p := &countingPersonality{outs: map[string]Outbound{}}
			h := newHarness(t, tt.plain, Config{Personalities: []Personality{p}, Logger: discardLogger()})
			for i := range n {
				id := fmt.Sprintf("dev%02d", i)
				c := h.dialRaw(t)
				sub := encodeClient(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: 1,
					Filters: packets.Subscriptions{{Filter: "$iothub/twin/res/#", Qos: 1}}})
				pub := encodeClient(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 2,
					TopicName: "devices/" + id + "/messages/events/", Payload: []byte("hello")})
				writes := [][]byte{encodeClient(t, connectPacket(id, "hub/"+id, "pw", 0, false)), sub, pub}
				if tt.together {
					writes = [][]byte{writes[0], append(sub, pub...)}
				}
				for _, w := range writes {
					if _, err := c.conn.Write(w); err != nil {
						t.Fatal(err)
					}
				}
				for _, want := range []byte{packets.Connack, packets.Suback, packets.Puback} {
					pk, err := readServerPacket(c.br)
					if err != nil {
						t.Fatal(err)
					}
					if pk.FixedHeader.Type != want {
						t.Fatalf("%s: got %s, want %s", id, packetName(pk.FixedHeader.Type), packetName(want))
					}
				}
			}
			if got := p.publishes.Load(); got != n {
				t.Fatalf("sessions got %d publishes, want %d", got, n)
			}
			testwait.For(t, waitTimeout, "idle clients to hold no read buffer", func() (bool, string) {
				held := h.b.readBuffers.Load()
				return held == 0, fmt.Sprintf("%d read buffers held by %d idle clients", held, n)
			})
		})
	}
}
