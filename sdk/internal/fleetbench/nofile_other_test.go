//go:build !unix

package fleetbench

import "testing"

// requireOpenFiles is a no-op where there is no RLIMIT_NOFILE.
func requireOpenFiles(*testing.T, uint64) {}
