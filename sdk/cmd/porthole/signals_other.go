//go:build !unix

package main

import "os"

// stopSignals end a command cleanly.
var stopSignals = []os.Signal{os.Interrupt}
