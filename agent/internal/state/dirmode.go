package state

import (
	"fmt"
	"io/fs"
	"os"
	"runtime"
)

// fixDirMode makes dir 0700 when other users can reach into it and this
// process owns it (a directory created by hand or by an older package
// with 0755). It returns a note for the log ("" when the mode was fine):
// what it changed, or why it could not.
func fixDirMode(dir string) string {
	if runtime.GOOS == "windows" {
		return ""
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm()&0o077 == 0 {
		return ""
	}
	perm := st.Mode().Perm()
	if !ownedByMe(st) {
		return fmt.Sprintf("state directory %s has mode %04o and belongs to another user: other users can reach the control socket and the cached assignment; chmod 700 it", dir, perm)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Sprintf("state directory %s has mode %04o and could not be set to 0700: %v", dir, perm, err)
	}
	return fmt.Sprintf("state directory %s had mode %04o; set it to 0700", dir, perm)
}

// DirNote says what Open found wrong with the state directory's mode and
// whether it fixed it ("" when nothing was wrong); the agent logs it.
func (s *Store) DirNote() string { return s.dirNote }

// Known returns the state last read or written by this Store without
// touching the disk; ok is false when there is none (or none is known).
func (s *Store) Known() (st State, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.known || s.last == nil {
		return State{}, false
	}
	st, why := decode(s.last)
	return st, why == ""
}

// WriteFile writes data to path crash-safely, as Save writes state.json:
// a temporary file in the same directory, fsync, rename, fsync of the
// directory. A crash leaves the old file or the new one, never a part.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return writeAtomic(path, data, perm, nil)
}
