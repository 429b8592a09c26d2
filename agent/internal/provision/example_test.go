package provision_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/porthole-iot/porthole/agent/internal/provision"
	"github.com/porthole-iot/porthole/agent/internal/state"
)

// dpsStub assigns every device to one hub.
type dpsStub struct{}

func (dpsStub) Register(context.Context, json.RawMessage) (provision.Assignment, error) {
	return provision.Assignment{AssignedHub: "hub-eu.example", DeviceID: "gw-7", Status: provision.StatusAssigned, Substatus: "initialAssignment"}, nil
}

func (dpsStub) Lookup(context.Context) (provision.Assignment, error) {
	return provision.Assignment{}, fmt.Errorf("not used here")
}

// hubSession stands for a connected hub client.
type hubSession struct{ done chan struct{} }

func (s hubSession) Done() <-chan struct{} { return s.done }
func (s hubSession) Err() error            { return nil }
func (s hubSession) Close()                {}

// The daemon's wiring in miniature: the first boot registers, caches the
// assignment and connects; Run keeps the session until its context ends.
func Example() {
	dir, _ := os.MkdirTemp("", "provision-example")
	defer os.RemoveAll(dir)
	store, _ := state.Open(dir)

	ctx, cancel := context.WithCancel(context.Background())
	p, err := provision.New(provision.Config{
		Identity: provision.Identity{IDScope: "0ne00000001", RegistrationID: "gw-7"},
		DPS:      dpsStub{},
		Store:    store,
		Connect: func(ctx context.Context, a provision.Assignment) (provision.Session, error) {
			fmt.Println("connecting to", a.AssignedHub, "as", a.DeviceID)
			cancel() // end the example once connected
			return hubSession{make(chan struct{})}, nil
		},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Run(ctx))
	st, _, _ := store.Load()
	fmt.Println("cached:", st.AssignedHub, st.Substatus)
	// Output:
	// connecting to hub-eu.example as gw-7
	// context canceled
	// cached: hub-eu.example initialAssignment
}
