//go:build unix

package main

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestPollableInterruptsBlockingStdin: a blocking descriptor (like an
// inherited stdin) becomes interruptible, and restore puts it back in
// blocking mode.
func TestPollableInterruptsBlockingStdin(t *testing.T) {
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	r := os.NewFile(uintptr(p[0]), "blocking-r") // blocking: outside the poller
	w := os.NewFile(uintptr(p[1]), "blocking-w")
	defer r.Close()
	defer w.Close()
	if err := r.SetReadDeadline(time.Time{}); err == nil {
		t.Skip("descriptor is pollable already; nothing to test")
	}
	in, restore := pollable(r)
	done := make(chan error, 1)
	go func() {
		_, err := in.Read(make([]byte, 1))
		done <- err
	}()
	interrupt(in)
	if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read ended with %v", err)
	}
	restore()
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if n, err := r.Read(b); n != 1 || err != nil || b[0] != 'x' {
		t.Fatalf("original descriptor after restore: %d %v", n, err)
	}
}
