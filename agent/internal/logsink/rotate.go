package logsink

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// fileMode is the mode of every log file: logs name devices and hosts.
	fileMode = 0o600
	// dirMode is used when the log directory has to be created.
	dirMode = 0o750
	// reopenAfter is the wait after a failed open before the next try.
	reopenAfter = time.Second
)

// rotatingFile appends records to path and rotates by size: before a
// record would take the file past maxSize, path.(n) becomes path.(n+1)
// (path.maxFiles is deleted), path becomes path.1 and a new path is
// started. No file ever exceeds maxSize; a record longer than maxSize is
// cut.
type rotatingFile struct {
	path     string
	maxSize  int64
	maxFiles int
	now      func() time.Time
	rep      *reporter

	mu       sync.Mutex // guards the fields below
	f        *os.File   // nil after a failure until reopened
	size     int64      // bytes in f
	nextOpen time.Time  // no open attempt before this after a failure
	closed   bool
}

func openRotating(path string, maxSize int64, maxFiles int, now func() time.Time, rep *reporter) (*rotatingFile, error) {
	switch {
	case path == "":
		return nil, fmt.Errorf("%w: destination file needs a file name", ErrConfig)
	case maxSize <= 0:
		return nil, fmt.Errorf("%w: max_size %d", ErrConfig, maxSize)
	case maxFiles < 0:
		return nil, fmt.Errorf("%w: max_files %d", ErrConfig, maxFiles)
	}
	r := &rotatingFile{path: path, maxSize: maxSize, maxFiles: maxFiles, now: now, rep: rep}
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return nil, fmt.Errorf("logsink: %w", err)
	}
	if err := r.open(); err != nil {
		return nil, fmt.Errorf("logsink: %w", err)
	}
	r.removeExtra()
	return r, nil
}

// name is the n-th file: path itself for 0, path.n after.
func (r *rotatingFile) name(n int) string {
	if n == 0 {
		return r.path
	}
	return r.path + "." + strconv.Itoa(n)
}

// open opens (or creates) path for appending and makes it 0600.
func (r *rotatingFile) open() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, fileMode)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return err
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != fileMode {
		if err := f.Chmod(fileMode); err != nil {
			_ = f.Close()
			return err
		}
	}
	r.f, r.size = f, st.Size()
	return nil
}

// removeExtra deletes rotated files numbered above maxFiles (left by a
// config that kept more).
func (r *rotatingFile) removeExtra() {
	matches, _ := filepath.Glob(r.path + ".*")
	for _, m := range matches {
		n, err := strconv.Atoi(strings.TrimPrefix(m, r.path+"."))
		if err == nil && n > r.maxFiles {
			_ = os.Remove(m)
		}
	}
}

// Write appends one record. It always reports success to slog; failures
// are counted and reported by the reporter.
func (r *rotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return len(p), nil
	}
	if err := r.write(p); err != nil {
		r.rep.drop(err)
	} else {
		r.rep.ok()
	}
	return len(p), nil
}

func (r *rotatingFile) write(p []byte) error {
	if int64(len(p)) > r.maxSize {
		cut := make([]byte, r.maxSize)
		copy(cut, p)
		cut[len(cut)-1] = '\n'
		p = cut
	}
	if r.f == nil {
		if r.now().Before(r.nextOpen) {
			return errors.New("log file unavailable (waiting to reopen)")
		}
		if err := r.open(); err != nil {
			r.nextOpen = r.now().Add(reopenAfter)
			return err
		}
	}
	if r.size > 0 && r.size+int64(len(p)) > r.maxSize {
		if err := r.rotate(); err != nil {
			return err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	if err != nil {
		// Disk full or the like: start over on the next record.
		_ = r.f.Close()
		r.f = nil
		r.nextOpen = r.now().Add(reopenAfter)
	}
	return err
}

// rotate shifts the files and starts an empty path. When the shifting
// fails, path is truncated instead so it still never outgrows maxSize.
func (r *rotatingFile) rotate() error {
	_ = r.f.Close()
	r.f = nil
	err := r.shift()
	if err == nil {
		err = r.open()
	}
	if err == nil && r.size == 0 {
		return nil
	}
	// Could not move path away (or a new one appeared with content):
	// truncate it so the size bound holds.
	if r.f == nil {
		f, oerr := os.OpenFile(r.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, fileMode)
		if oerr != nil {
			r.nextOpen = r.now().Add(reopenAfter)
			return errors.Join(err, oerr)
		}
		r.f = f
	} else if terr := r.f.Truncate(0); terr != nil {
		_ = r.f.Close()
		r.f = nil
		r.nextOpen = r.now().Add(reopenAfter)
		return errors.Join(err, terr)
	}
	r.size = 0
	return err
}

func (r *rotatingFile) shift() error {
	if err := os.Remove(r.name(r.maxFiles)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for i := r.maxFiles - 1; i >= 0; i-- {
		if err := os.Rename(r.name(i), r.name(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (r *rotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
