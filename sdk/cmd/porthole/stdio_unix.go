//go:build unix

package main

import (
	"io"
	"os"
	"syscall"
	"time"
)

// pollable returns a reader for r whose blocked reads SetReadDeadline can
// interrupt, and a function that undoes the change. An inherited stdin
// (fd 0) is in blocking mode and outside Go's poller, so a read from it
// cannot be interrupted; pollable puts a duplicate of the descriptor in
// non-blocking mode, which registers it with the poller. Non-blocking mode
// belongs to the open file description, so restore switches it back before
// the parent (ssh, a shell) uses the descriptor again.
func pollable(r io.Reader) (io.Reader, func()) {
	nop := func() {}
	f, ok := r.(*os.File)
	if !ok {
		return r, nop
	}
	if f.SetReadDeadline(time.Time{}) == nil {
		return f, nop // already pollable (a pipe made by os.Pipe, a socket)
	}
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		return r, nop
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return r, nop
	}
	nf := os.NewFile(uintptr(fd), f.Name())
	if nf.SetReadDeadline(time.Time{}) != nil { // e.g. a regular file: reads end by themselves
		_ = syscall.SetNonblock(fd, false)
		nf.Close()
		return r, nop
	}
	return nf, func() {
		_ = syscall.SetNonblock(fd, false)
		nf.Close()
	}
}
