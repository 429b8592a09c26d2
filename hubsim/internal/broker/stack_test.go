package broker

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/porthole-iot/porthole/sdk/testwait"
)

// readerStacks connects n TLS clients that each publish once and go idle,
// lets the garbage collector shrink the stacks (it halves a stack using
// less than a quarter of it, once per cycle), and returns the goroutine
// stack memory per client then (idle) and right after each client
// published once more (reading), before any further collection.
func readerStacks(t *testing.T, n int) (idle, reading float64) {
	p := &countingPersonality{outs: map[string]Outbound{}}
	h := newHarness(t, false, Config{Personalities: []Personality{p}, Logger: discardLogger()})
	var before, m runtime.MemStats
	for range 8 {
		runtime.GC()
	}
	runtime.ReadMemStats(&before)
	clients := make([]*rawClient, n)
	for i := range clients {
		id := fmt.Sprintf("dev%03d", i)
		clients[i] = h.dialRaw(t)
		if err := smokeRoundTrip(t, clients[i].conn, clients[i].br, id); err != nil {
			t.Fatal(err)
		}
	}
	testwait.True(t, waitTimeout, "every session to see its publish", func() bool { return p.publishes.Load() == int64(n) })
	for range 8 { // a 64 KiB stack needs 4 halvings to reach 4 KiB
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	idle = float64(int64(m.StackInuse)-int64(before.StackInuse)) / float64(n)
	for i, c := range clients {
		pub := encodeClient(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 3,
			TopicName: fmt.Sprintf("devices/dev%03d/messages/events/", i), Payload: []byte("again")})
		_ = c.conn.SetDeadline(time.Now().Add(waitTimeout))
		if _, err := c.conn.Write(pub); err != nil {
			t.Fatal(err)
		}
		if pk, err := readServerPacket(c.br); err != nil || pk.FixedHeader.Type != packets.Puback {
			t.Fatalf("client %d: %v %s, want PUBACK", i, err, packetName(pk.FixedHeader.Type))
		}
	}
	runtime.ReadMemStats(&m)
	reading = float64(int64(m.StackInuse)-int64(before.StackInuse)) / float64(n)
	return idle, reading
}

// TestReaderStack: an idle client's goroutine waits for its next packet in
// a small frame (client.waitPacket), so the garbage collector shrinks its
// stack to 8 KiB, and reading a packet does not grow it again: the packet
// is decoded by pointer into a pooled packets.Packet (800 bytes). Before,
// copies of the packet in the reader's frames kept idle stacks at 16 KiB
// (16,876 bytes per idle TLS client) and grew a shrunk stack back to 16 KiB
// on every packet (at 10,000 devices: 162 MiB of stacks during telemetry,
// and stack copying was 9% of hubsim's CPU). The bound holds with the race
// detector too (8,684 bytes after reading, 16,876 before).
func TestReaderStack(t *testing.T) {
	if os.Getenv(envStackChild) != "1" {
		// Measured in a fresh process: goroutines that ended earlier in this
		// one (other tests) leave their stacks cached for reuse, and the
		// difference in StackInuse would not see the readers' stacks.
		cmd := exec.Command(os.Args[0], "-test.run=^TestReaderStack$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), envStackChild+"=1")
		out, err := cmd.CombinedOutput()
		t.Logf("in a fresh process:\n%s", out)
		if err != nil {
			t.Fatalf("the measurement failed: %v", err)
		}
		if !strings.Contains(string(out), "goroutine stack per TLS client") {
			t.Fatal("the fresh process did not measure")
		}
		return
	}
	const limit = 10 << 10
	idle, reading := readerStacks(t, 200)
	t.Logf("goroutine stack per TLS client: %.0f bytes idle, %.0f bytes after reading a packet", idle, reading)
	if idle > limit || reading > limit {
		t.Errorf("goroutine stack per TLS client: %.0f bytes idle, %.0f after reading a packet; want at most %d", idle, reading, limit)
	}
}

// envStackChild marks the process TestReaderStack starts to measure in.
const envStackChild = "BROKER_TEST_STACK_CHILD"
