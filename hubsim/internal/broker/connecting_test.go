package broker

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/porthole-iot/porthole/sdk/testwait"
)

// connack sends CONNECT for id on c and reads the CONNACK.
func connack(t *testing.T, c *rawClient, id string) {
	t.Helper()
	_ = c.conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := c.conn.Write(encodeClient(t, connectPacket(id, "hub/"+id, "pw", 0, false))); err != nil {
		t.Fatal(err)
	}
	pk, err := readServerPacket(c.br)
	if err != nil {
		t.Fatalf("%s: reading CONNACK: %v", id, err)
	}
	if pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0 {
		t.Fatalf("%s: got %s code %d, want an accepting CONNACK", id, packetName(pk.FixedHeader.Type), pk.ReasonCode)
	}
}

// TestMaxConnecting: with one place for connecting clients, a second
// client's CONNECT waits while the first connects, and is answered once
// the first is done. Before, every accepted connection did its handshake
// and CONNECT at once.
func TestMaxConnecting(t *testing.T) {
	p := &countingPersonality{outs: map[string]Outbound{}}
	h := newHarness(t, true, Config{Personalities: []Personality{p}, Logger: discardLogger(), MaxConnecting: 1, ConnectingHold: time.Hour})
	first := h.dialRaw(t)
	testwait.True(t, waitTimeout, "the first connection to take the only place", func() bool { return len(h.b.connecting) == 1 })
	second := h.dialRaw(t)
	if _, err := second.conn.Write(encodeClient(t, connectPacket("dev2", "hub/dev2", "pw", 0, false))); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, waitTimeout, "the second connection to wait for a place", func() (bool, string) {
		n := h.b.connectWaiting.Load()
		return n == 1, fmt.Sprintf("%d waiting", n)
	})
	connack(t, first, "dev1") // done connecting: the place is free
	_ = second.conn.SetDeadline(time.Now().Add(waitTimeout))
	pk, err := readServerPacket(second.br)
	if err != nil || pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0 {
		t.Fatalf("second client: %v %s %d, want an accepting CONNACK", err, packetName(pk.FixedHeader.Type), pk.ReasonCode)
	}
	testwait.True(t, waitTimeout, "no place held by connected clients", func() bool { return len(h.b.connecting) == 0 })
}

// TestConnectingHold: a client that stalls before its CONNECT keeps its
// place only for ConnectingHold; then others connect, and so can it.
func TestConnectingHold(t *testing.T) {
	p := &countingPersonality{outs: map[string]Outbound{}}
	h := newHarness(t, true, Config{Personalities: []Personality{p}, Logger: discardLogger(), MaxConnecting: 1, ConnectingHold: 20 * time.Millisecond})
	stalled := h.dialRaw(t)
	testwait.True(t, waitTimeout, "the stalled connection to take the only place", func() bool { return len(h.b.connecting) == 1 })
	connack(t, h.dialRaw(t), "dev2")
	connack(t, stalled, "dev1")
}

// TestConnectingWaitEndsOnClose: a connection waiting for a place ends
// when the broker closes.
func TestConnectingWaitEndsOnClose(t *testing.T) {
	p := &countingPersonality{outs: map[string]Outbound{}}
	h := newHarness(t, true, Config{Personalities: []Personality{p}, Logger: discardLogger(), MaxConnecting: 1, ConnectingHold: time.Hour})
	h.dialRaw(t)
	testwait.True(t, waitTimeout, "the first connection to take the only place", func() bool { return len(h.b.connecting) == 1 })
	h.dialRaw(t)
	testwait.True(t, waitTimeout, "the second connection to wait", func() bool { return h.b.connectWaiting.Load() == 1 })
	if err := h.b.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := h.nextServed(t); !errors.Is(err, ErrBrokerClosed) {
			t.Errorf("ServeConn = %v, want ErrBrokerClosed", err)
		}
	}
	if n := h.b.connectWaiting.Load(); n != 0 {
		t.Errorf("%d connections still counted as waiting", n)
	}
}
