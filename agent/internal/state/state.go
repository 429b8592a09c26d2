package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FileName is the state file inside the state directory.
const FileName = "state.json"

// CurrentVersion is the State.Version this package writes and reads.
const CurrentVersion = 1

// maxStateSize bounds what Load reads; a real state file is < 1 KiB.
const maxStateSize = 64 << 10

var (
	// ErrCorrupt means state.json could not be used. Load has moved it aside;
	// register with DPS again.
	ErrCorrupt = errors.New("state: corrupt state file")
	// ErrInvalid means Save was given a State missing a required field.
	ErrInvalid = errors.New("state: invalid state")
)

// State is the cached result of the last successful DPS registration.
type State struct {
	// Version is the file format; Save fills in CurrentVersion when 0.
	Version int `json:"version"`

	// The identity the assignment was made for. When the config names a
	// different scope, registration ID or credential, the cache is stale.
	GlobalEndpoint string `json:"globalEndpoint,omitempty"`
	IDScope        string `json:"idScope,omitempty"`
	RegistrationID string `json:"registrationId"`
	// CredentialID fingerprints the credential used (see Fingerprint);
	// never the credential itself.
	CredentialID string `json:"credentialId,omitempty"`

	// The assignment, from DPS's DeviceRegistrationResult.
	AssignedHub    string    `json:"assignedHub"`
	DeviceID       string    `json:"deviceId"`
	Substatus      string    `json:"substatus,omitempty"`
	ETag           string    `json:"etag,omitempty"`
	LastRegistered time.Time `json:"lastRegistered"`
}

// Matches reports whether the cached assignment was made for this identity.
func (s State) Matches(globalEndpoint, idScope, registrationID, credentialID string) bool {
	return strings.EqualFold(s.GlobalEndpoint, globalEndpoint) && s.IDScope == idScope &&
		s.RegistrationID == registrationID && s.CredentialID == credentialID
}

func (s State) check() error {
	var missing []string
	if s.RegistrationID == "" {
		missing = append(missing, "registrationId")
	}
	if s.AssignedHub == "" {
		missing = append(missing, "assignedHub")
	}
	if s.DeviceID == "" {
		missing = append(missing, "deviceId")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// Fingerprint names a credential without revealing it: "sha256:" and the
// first 16 bytes, hex, of SHA-256 over a fixed label and the credential
// (a symmetric key's bytes, or a certificate's DER).
func Fingerprint(credential []byte) string {
	h := sha256.New()
	h.Write([]byte("porthole credential v1\x00"))
	h.Write(credential)
	return "sha256:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Store reads and writes state.json in one directory. Its methods are safe
// for concurrent use; it starts no goroutines.
type Store struct {
	dir  string
	path string
	now  func() time.Time

	dirNote string // what Open did about the directory's mode

	mu sync.Mutex // serialises Load/Save/Clear
	// last is the encoding of the state known to be on disk (guarded by
	// mu); known says whether last is valid (false = not looked yet).
	last  []byte
	known bool
	// writes counts files written (guarded by mu); a test seam.
	writes int
	// beforeRename, if non-nil, runs after the temporary file is written
	// and synced, before it replaces state.json; an error aborts the Save
	// as a crash would. A test seam.
	beforeRename func(tmp string) error
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock used to name corrupt files (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// Open prepares dir (created 0700 if missing) and removes temporary files a
// crash may have left behind.
func Open(dir string, opts ...Option) (*Store, error) {
	if dir == "" {
		return nil, errors.New("state: no state directory")
	}
	s := &Store{dir: dir, path: filepath.Join(dir, FileName), now: time.Now}
	for _, o := range opts {
		o(s)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: create %s: %w", dir, err)
	}
	s.dirNote = fixDirMode(dir)
	leftovers, err := filepath.Glob(filepath.Join(dir, FileName+".tmp-*"))
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	for _, p := range leftovers {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("state: remove leftover %s: %w", p, err)
		}
	}
	return s, nil
}

// Path is the state file's path.
func (s *Store) Path() string { return s.path }

// Load reads the cached state. ok is false when there is none. A file that
// cannot be used is moved to state.json.corrupt-<UTC time> and Load returns
// an error wrapping ErrCorrupt (with ok false): log it and register again.
// Other errors (e.g. permission denied) leave the file alone.
func (s *Store) Load() (st State, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := readFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		s.last, s.known = nil, true
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("state: read %s: %w", s.path, err)
	}
	st, why := decode(data)
	if why != "" {
		moved, merr := s.moveAside()
		if merr != nil {
			return State{}, false, fmt.Errorf("%w: %s %s; could not move it aside (%v): delete it and the agent will register with DPS again", ErrCorrupt, s.path, why, merr)
		}
		return State{}, false, fmt.Errorf("%w: %s %s; moved it to %s, the agent will register with DPS again", ErrCorrupt, s.path, why, filepath.Base(moved))
	}
	enc, err := encode(st)
	if err != nil {
		return State{}, false, fmt.Errorf("state: %w", err)
	}
	s.last, s.known = enc, true
	return st, true, nil
}

// decode parses a state file; why says what is wrong ("" when fine).
func decode(data []byte) (State, string) {
	var st State
	if len(bytes.TrimSpace(data)) == 0 {
		return State{}, "is empty"
	}
	if len(data) > maxStateSize {
		return State{}, "is larger than " + strconv.Itoa(maxStateSize) + " bytes"
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return State{}, "is not valid JSON (" + err.Error() + ")"
	}
	switch {
	case st.Version > CurrentVersion:
		return State{}, "was written by a newer agent (version " + strconv.Itoa(st.Version) + ")"
	case st.Version != CurrentVersion:
		return State{}, "has an unknown version " + strconv.Itoa(st.Version)
	}
	if err := st.check(); err != nil {
		return State{}, "is incomplete (" + err.Error() + ")"
	}
	return st, ""
}

func encode(st State) ([]byte, error) {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func (s *Store) moveAside() (string, error) {
	base := s.path + ".corrupt-" + s.now().UTC().Format("20060102T150405Z")
	dst := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if i > 100 {
			return "", errors.New("too many corrupt files")
		}
		dst = base + "-" + strconv.Itoa(i)
	}
	if err := os.Rename(s.path, dst); err != nil {
		return "", err
	}
	s.last, s.known = nil, true
	return dst, syncDir(s.dir)
}

// Save stores st unless the file already holds the same state (flash
// wear). Version 0 is saved as CurrentVersion. The write is atomic: a crash
// leaves the old or the new file.
func (s *Store) Save(st State) error {
	if st.Version == 0 {
		st.Version = CurrentVersion
	}
	if st.Version != CurrentVersion {
		return fmt.Errorf("%w: version %d, this agent writes %d", ErrInvalid, st.Version, CurrentVersion)
	}
	if err := st.check(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	data, err := encode(st)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.known {
		// First Save without a Load: compare with what is on disk.
		if cur, err := readFile(s.path); err == nil {
			if old, why := decode(cur); why == "" {
				if enc, err := encode(old); err == nil {
					s.last, s.known = enc, true
				}
			}
		}
	}
	if s.known && bytes.Equal(s.last, data) {
		return nil
	}
	if err := s.writeAtomic(data); err != nil {
		return fmt.Errorf("state: save %s: %w", s.path, err)
	}
	s.last, s.known = data, true
	return nil
}

// Clear removes the state file (forget the assignment).
func (s *Store) Clear() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state: %w", err)
	}
	s.last, s.known = nil, true
	return syncDir(s.dir)
}

func (s *Store) writeAtomic(data []byte) error {
	s.writes++
	return writeAtomic(s.path, data, 0o600, s.beforeRename)
}

// writeAtomic is WriteFile with a test seam: beforeRename (if non-nil)
// runs after the temporary file is written and synced.
func writeAtomic(path string, data []byte, perm fs.FileMode, beforeRename func(tmp string) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if beforeRename != nil {
		if err = beforeRename(tmp); err != nil {
			return err
		}
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable. Filesystems that cannot fsync a
// directory (and Windows) are tolerated.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return err
	}
	return nil
}

// readFile reads at most maxStateSize+1 bytes; decode rejects more.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxStateSize+1))
}
