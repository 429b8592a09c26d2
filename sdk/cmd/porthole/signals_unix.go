//go:build unix

package main

import (
	"os"
	"syscall"
)

// stopSignals end a command cleanly (ctx is cancelled, streams close with
// a normal close frame). SIGHUP is among them: ssh sends it to its
// ProxyCommand (porthole stdio) when it exits, and dying of it would leave
// the device to see a dropped stream.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}
