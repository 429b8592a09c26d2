// Command porthole is the operator's tool: ssh into devices through IoT Hub
// device streams, forward ports, invoke direct methods and enroll devices
// in DPS. See doc.go.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode reports err on stderr and picks the exit status: ssh's own status
// for "porthole ssh", 2 for usage errors, 1 otherwise.
func exitCode(err error, stderr *os.File) int {
	var ee *exitError
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "porthole:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "porthole:", err)
		return 1
	}
}
