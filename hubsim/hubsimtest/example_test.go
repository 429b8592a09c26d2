package hubsimtest_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
)

// ExampleNew starts a sim for one test and talks to it by the hub's host
// name: the sim's client dials its listener and trusts its CA.
func ExampleNew() {
	var t *testing.T // the test's *testing.T

	sim := hubsimtest.New(t, hubsimtest.WithConfig(func(c *hubsimtest.Config) {
		c.DPS.IDScope = "0ne0000TEST"
	}))
	req, _ := http.NewRequestWithContext(context.Background(), "GET", "https://hub-eu.local/healthz", nil)
	resp, err := sim.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	// Device and service code under test takes these:
	_ = sim.DialContext                         // dial seam: host names and 443/8883 map to the sim
	_ = sim.TLSConfig()                         // trusts only the sim's CA
	_ = sim.HubConnectionString("hub-eu.local") // service connection string
	_ = sim.IDScope                             // DPS id scope
}
