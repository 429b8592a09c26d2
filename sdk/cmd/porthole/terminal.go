package main

import (
	"io"
	"os"
)

// isTerminal tells whether w is a character device (a terminal), for the
// progress line "porthole ssh" shows while it waits for the device.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
