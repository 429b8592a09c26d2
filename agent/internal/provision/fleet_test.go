package provision_test

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/provision"
	"github.com/porthole-iot/porthole/agent/internal/state"
	"github.com/porthole-iot/porthole/sdk/retry"
)

// This file drives many Machines from one goroutine on a virtual clock,
// the way a fleet planner would: no sockets, no goroutine or timer per
// device, only the exported API.

// vclock is a virtual clock; Machines only read it.
type vclock struct{ now time.Time }

func (c *vclock) Now() time.Time { return c.now }
func (c *vclock) NewTimer(time.Duration) retry.Timer {
	panic("a Machine never starts a timer; its driver waits")
}

// memStore is an in-memory provision.Store.
type memStore struct {
	st state.State
	ok bool
}

func (m *memStore) Load() (state.State, bool, error) { return m.st, m.ok, nil }
func (m *memStore) Save(st state.State) error        { m.st, m.ok = st, true; return nil }

type noDPS struct{}

func (noDPS) Register(context.Context, json.RawMessage) (provision.Assignment, error) {
	return provision.Assignment{}, fmt.Errorf("not in this scenario")
}
func (noDPS) Lookup(context.Context) (provision.Assignment, error) {
	return provision.Assignment{}, fmt.Errorf("not in this scenario")
}

// simSession is a hub session the driver ends itself.
type simSession struct{}

func (simSession) Done() <-chan struct{} { return nil }
func (simSession) Err() error            { return nil }
func (simSession) Close()                {}

// wake is a device's next event on the virtual clock.
type wake struct {
	at  time.Time
	dev int
}

type wakeHeap []wake

func (h wakeHeap) Len() int           { return len(h) }
func (h wakeHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h wakeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *wakeHeap) Push(x any)        { *h = append(*h, x.(wake)) }
func (h *wakeHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	*h = old[:len(old)-1]
	return w
}

// outage is the result of one simulated hub outage.
type outage struct {
	back     []time.Duration // per device: reconnected this long after the hub came back
	attempts int             // connection attempts, all devices
	peak     int             // most connection attempts in one virtual second after the hub came back
}

// simulateOutage connects n devices to hub-a, drops them all at t0, keeps
// the hub refusing connections for down, and runs until every device is
// connected again.
func simulateOutage(tb testing.TB, n int, down time.Duration, seed uint64) outage {
	clock := &vclock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	t0 := clock.now
	var up time.Time // the hub refuses connections until then
	rng := rand.New(rand.NewPCG(seed, seed))
	var res outage
	perSecond := map[int64]int{}
	connect := func(ctx context.Context, a provision.Assignment) (provision.Session, error) {
		res.attempts++
		if clock.now.Before(up) {
			return nil, fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
		}
		perSecond[clock.now.Sub(up).Milliseconds()/1000]++
		return simSession{}, nil
	}
	ms := make([]*provision.Machine, n)
	for i := range ms {
		id := fmt.Sprintf("dev-%06d", i)
		store := &memStore{ok: true, st: state.State{RegistrationID: id, AssignedHub: "hub-a", DeviceID: id}}
		p, err := provision.New(provision.Config{
			Identity: provision.Identity{RegistrationID: id},
			DPS:      noDPS{},
			Store:    store,
			Connect:  connect,
			Retry:    retry.Policy{Clock: clock, Rand: rng.Float64},
		})
		if err != nil {
			tb.Fatal(err)
		}
		m := p.NewMachine()
		if s := m.Start(); s != provision.StateConnect {
			tb.Fatalf("start: %v", s)
		}
		if s := m.Step(context.Background()); s != provision.StateServe {
			tb.Fatalf("first connect: %v", s)
		}
		ms[i] = m
	}
	res.attempts = 0
	clear(perSecond)
	up = t0.Add(down)

	// The hub drops everyone at t0.
	h := &wakeHeap{}
	for i, m := range ms {
		if s := m.SessionEnded(fmt.Errorf("read: %w", syscall.ECONNRESET)); s != provision.StateWait {
			tb.Fatalf("after the drop: %v", s)
		}
		heap.Push(h, wake{clock.now.Add(m.Delay()), i})
	}
	res.back = make([]time.Duration, n)
	for h.Len() > 0 {
		w := heap.Pop(h).(wake)
		clock.now = w.at
		m := ms[w.dev]
		m.WaitOver()
		switch s := m.Step(context.Background()); s {
		case provision.StateWait:
			heap.Push(h, wake{clock.now.Add(m.Delay()), w.dev})
		case provision.StateServe:
			res.back[w.dev] = clock.now.Sub(up)
		default:
			tb.Fatalf("device %d: %v", w.dev, s)
		}
	}
	for _, c := range perSecond {
		res.peak = max(res.peak, c)
	}
	return res
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

// After a 250 s outage (the partition that took 3 min 45 s with a 5-minute
// ceiling), every device is back within DefaultHubMaxBackoff of the hub's
// return, and the fleet's reconnects are spread over that minute rather
// than arriving together.
func TestFleetReconnectAfterOutage(t *testing.T) {
	const n = 2000
	res := simulateOutage(t, n, 250*time.Second, 1)
	worst := slices.Max(res.back)
	if worst > provision.DefaultHubMaxBackoff {
		t.Errorf("last device back %v after the hub, want at most %v", worst, provision.DefaultHubMaxBackoff)
	}
	// Full jitter over [5 s, 60 s]: the residual wait's density is at most
	// 1/E[W] = 1/32.5 s per device, i.e. about n/32.5 connections per
	// second; allow 25% for randomness.
	if limit := n * 125 / 3250; res.peak > limit {
		t.Errorf("peak %d reconnects in one second, want at most %d (spread by jitter)", res.peak, limit)
	}
	if p50 := percentile(res.back, 0.5); p50 < 5*time.Second || p50 > 40*time.Second {
		t.Errorf("median back after %v, want between 5 s and 40 s", p50)
	}
}

// BenchmarkFleetOutage prints the reconnect figures of a 100,000-device
// fleet after a 250 s hub outage, and what the simulation costs per device.
//
//	go test -run XXX -bench FleetOutage -benchtime 1x ./agent/internal/provision
func BenchmarkFleetOutage(b *testing.B) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	for range b.N {
		start := time.Now()
		res := simulateOutage(b, n, 250*time.Second, 7)
		took := time.Since(start)
		b.ReportMetric(float64(took.Nanoseconds())/float64(n), "ns/device")
		b.Logf("devices %d | attempts %d | back after the hub: p50 %v p99 %v max %v | peak %d connects/s | wall %v",
			n, res.attempts, percentile(res.back, 0.5).Round(100*time.Millisecond), percentile(res.back, 0.99).Round(100*time.Millisecond),
			slices.Max(res.back).Round(100*time.Millisecond), res.peak, took.Round(time.Millisecond))
	}
}

// ExampleMachine drives one device's flow by hand on a virtual clock: the
// hub refuses twice, then accepts.
func ExampleMachine() {
	clock := &vclock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	fails := 2
	p, _ := provision.New(provision.Config{
		Identity: provision.Identity{RegistrationID: "gw-1"},
		DPS:      noDPS{},
		Store:    &memStore{ok: true, st: state.State{RegistrationID: "gw-1", AssignedHub: "hub-a", DeviceID: "gw-1"}},
		Connect: func(context.Context, provision.Assignment) (provision.Session, error) {
			if fails > 0 {
				fails--
				return nil, fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
			}
			return simSession{}, nil
		},
		Retry: retry.Policy{Clock: clock, Rand: func() float64 { return 0.5 }},
	})
	m := p.NewMachine()
	for s := m.Start(); s != provision.StateServe; {
		if s == provision.StateWait {
			fmt.Println("wait", m.Delay(), "then", m.Resume())
			clock.now = clock.now.Add(m.Delay())
			s = m.WaitOver()
			continue
		}
		fmt.Println(s)
		s = m.Step(context.Background())
	}
	fmt.Println("serving on", m.Assignment().AssignedHub)
	// Output:
	// connect
	// wait 7.5s then connect
	// connect
	// wait 12.5s then connect
	// connect
	// serving on hub-a
}
