package health_test

import (
	"fmt"

	"github.com/porthole-iot/porthole/sdk/health"
)

// A service-side tool reads the health from a twin's reported properties
// (as returned by the hub's twin API, decoded from JSON).
func ExampleFromTwin() {
	reported := map[string]any{"porthole": map[string]any{
		"version":       "v1.4.0",
		"streams":       map[string]any{"open": 0, "accepted": 3, "rejected": 1},
		"lastRejection": map[string]any{"stream": "web", "reason": "unknown stream", "at": "2025-03-01T12:30:00Z"},
	}}
	r, ok, err := health.FromTwin(reported)
	if err != nil || !ok {
		fmt.Println("no health report", err)
		return
	}
	fmt.Printf("%s: %d accepted, %d rejected; last rejected %q (%s) at %s\n", r.Version, r.Streams.Accepted, r.Streams.Rejected,
		r.LastRejection.Stream, r.LastRejection.Reason, r.LastRejection.At.Format("15:04"))
	// Output: v1.4.0: 3 accepted, 1 rejected; last rejected "web" (unknown stream) at 12:30
}
