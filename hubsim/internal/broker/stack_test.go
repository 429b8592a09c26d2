package broker

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/porthole-iot/porthole/sdk/testwait"
)

// idleStackPerClient connects n TLS clients that each publish once and go
// idle, lets the garbage collector shrink the stacks (it halves a stack
// using less than a quarter of it, once per cycle), and returns the
// goroutine stack memory per idle client.
func idleStackPerClient(t *testing.T, n int) float64 {
	p := &countingPersonality{outs: map[string]Outbound{}}
	h := newHarness(t, false, Config{Personalities: []Personality{p}, Logger: discardLogger()})
	var before, after runtime.MemStats
	for range 8 {
		runtime.GC()
	}
	runtime.ReadMemStats(&before)
	for i := range n {
		id := fmt.Sprintf("dev%03d", i)
		c := h.dialRaw(t)
		if err := smokeRoundTrip(t, c.conn, c.br, id); err != nil {
			t.Fatal(err)
		}
	}
	testwait.True(t, waitTimeout, "every session to see its publish", func() bool { return p.publishes.Load() == int64(n) })
	for range 8 { // a 64 KiB stack needs 4 halvings to reach 4 KiB
		runtime.GC()
	}
	runtime.ReadMemStats(&after)
	return float64(int64(after.StackInuse)-int64(before.StackInuse)) / float64(n)
}

// TestIdleReaderStack: an idle client's goroutine waits for its next
// packet in a small frame (client.waitPacket), so the garbage collector
// shrinks its stack to 8 KiB. It kept 16 KiB while the wait happened
// under frames holding a packets.Packet (800 bytes) and its copies: 16,876
// bytes per idle TLS client before, 8,520 after (the harness's serving
// goroutine is the only one per connection).
func TestIdleReaderStack(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector instruments every frame: idle stacks are 16 KiB under it whatever the frames hold")
	}
	const limit = 10 << 10
	per := idleStackPerClient(t, 200)
	t.Logf("goroutine stack per idle TLS client: %.0f bytes", per)
	if per > limit {
		t.Errorf("goroutine stack per idle TLS client: %.0f bytes, want at most %d", per, limit)
	}
}
