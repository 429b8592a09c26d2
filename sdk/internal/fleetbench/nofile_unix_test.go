//go:build unix

package fleetbench

import (
	"syscall"
	"testing"
)

// requireOpenFiles fails the test, saying what to do, when the hard limit
// on open files is below need: hubsim holds one descriptor per connected
// device (Go raises each process's soft limit to the hard limit itself).
func requireOpenFiles(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("reading the open-file limit: %v", err)
	}
	if lim.Max < need {
		t.Fatalf("this run needs about %d open files in hubsim, the hard limit is %d: raise it first (as root: ulimit -Hn %d)", need, lim.Max, need)
	}
}
