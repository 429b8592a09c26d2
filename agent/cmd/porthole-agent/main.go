// Command porthole-agent is the porthole device agent. See doc.go.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
)

// Memory defaults for small devices, applied when the environment does not
// set them (GOGC and GOMEMLIMIT always win):
//
//   - GOGC=50: collect when the heap grew by half since the last
//     collection instead of doubling. The agent's live heap is a few MiB,
//     so this costs little CPU and keeps the peak low on 64–128 MiB boards.
//   - GOMEMLIMIT=64MiB: a soft limit that makes the collector work harder
//     before the process grows past it. It is not a cap: the agent keeps
//     running above it (with at most half of the CPU spent on collection,
//     the runtime's own bound).
const (
	defaultGCPercent   = 50
	defaultMemoryLimit = 64 << 20
)

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		// The verb printed why.
		os.Exit(ee.code)
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "porthole-agent:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "porthole-agent:", err)
		os.Exit(1)
	}
}
