package state_test

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/state"
)

// The boot flow: use the cached hub when the identity still matches,
// otherwise register and save the new assignment.
func Example() {
	dir, _ := os.MkdirTemp("", "porthole-state")
	defer os.RemoveAll(dir)

	store, err := state.Open(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	cred := state.Fingerprint([]byte("the device key bytes"))
	st, ok, err := store.Load()
	if errors.Is(err, state.ErrCorrupt) {
		fmt.Println("warning:", err) // moved aside; register again
	}
	if !ok || !st.Matches("global.azure-devices-provisioning.net", "0ne00012345", "dev1", cred) {
		fmt.Println("registering with DPS")
		st = state.State{
			GlobalEndpoint: "global.azure-devices-provisioning.net", IDScope: "0ne00012345",
			RegistrationID: "dev1", CredentialID: cred,
			AssignedHub: "hub1.azure-devices.net", DeviceID: "dev1",
			LastRegistered: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		}
		if err := store.Save(st); err != nil {
			fmt.Println(err)
			return
		}
	}
	st, ok, _ = store.Load()
	fmt.Println(ok, st.AssignedHub)
	// Output:
	// registering with DPS
	// true hub1.azure-devices.net
}
