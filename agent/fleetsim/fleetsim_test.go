package fleetsim_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/agent/fleetsim"
	"github.com/porthole-iot/porthole/sdk/retry"
)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time                     { return c.now }
func (c *clock) NewTimer(time.Duration) retry.Timer { panic("no timers in a Machine") }

type dps struct{ calls int }

func (d *dps) Register(context.Context, json.RawMessage) (fleetsim.Assignment, error) {
	d.calls++
	return fleetsim.Assignment{AssignedHub: "hub-b", DeviceID: "d1", Status: fleetsim.StatusAssigned}, nil
}
func (d *dps) Lookup(context.Context) (fleetsim.Assignment, error) {
	return fleetsim.Assignment{}, errors.New("unused")
}

type sess struct{}

func (sess) Done() <-chan struct{} { return nil }
func (sess) Err() error            { return nil }
func (sess) Close()                {}

// A device whose cached hub refuses it registers again and moves: the
// agent's real flow, driven through the re-exported API, caching the new
// assignment in the MemStore.
func TestMachineThroughAliases(t *testing.T) {
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st := &fleetsim.MemStore{OK: true, St: fleetsim.Cached{RegistrationID: "d1", AssignedHub: "hub-a", DeviceID: "d1"}}
	d := &dps{}
	p, err := fleetsim.New(fleetsim.Config{
		Identity: fleetsim.Identity{RegistrationID: "d1"},
		DPS:      d,
		Store:    st,
		Connect: func(_ context.Context, a fleetsim.Assignment) (fleetsim.Session, error) {
			if a.AssignedHub == "hub-a" {
				return nil, fleetsim.ErrHubRefused
			}
			return sess{}, nil
		},
		Retry: retry.Policy{Clock: clk, Rand: func() float64 { return 0 }},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := p.NewMachine()
	want := []fleetsim.State{fleetsim.StateConnect, fleetsim.StateRegister, fleetsim.StateConnect, fleetsim.StateServe}
	got := []fleetsim.State{m.Start()}
	for len(got) < len(want) {
		got = append(got, m.Step(t.Context()))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("states %v, want %v", got, want)
		}
	}
	if d.calls != 1 || st.St.AssignedHub != "hub-b" {
		t.Errorf("registrations %d, cached hub %q", d.calls, st.St.AssignedHub)
	}
}
