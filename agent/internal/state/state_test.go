package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var fixed = time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)

func sample() State {
	return State{
		GlobalEndpoint: "global.azure-devices-provisioning.net",
		IDScope:        "0ne00012345",
		RegistrationID: "dev1",
		CredentialID:   Fingerprint([]byte("key")),
		AssignedHub:    "hub1.azure-devices.net",
		DeviceID:       "dev1",
		Substatus:      "initialAssignment",
		ETag:           `"abc"`,
		LastRegistered: fixed,
	}
}

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, WithClock(func() time.Time { return fixed }))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := open(t, dir)
	if _, ok, err := s.Load(); ok || err != nil {
		t.Fatalf("empty dir: ok=%v err=%v", ok, err)
	}
	want := sample()
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	want.Version = CurrentVersion
	// A fresh Store (as after a reboot) reads it back.
	got, ok, err := open(t, dir).Load()
	if err != nil || !ok {
		t.Fatalf("Load: ok=%v err=%v", ok, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if !got.Matches("GLOBAL.azure-devices-provisioning.net", "0ne00012345", "dev1", Fingerprint([]byte("key"))) {
		t.Errorf("Matches false for the same identity")
	}
	for _, m := range [][4]string{
		{"other", "0ne00012345", "dev1", Fingerprint([]byte("key"))},
		{want.GlobalEndpoint, "0ne0009", "dev1", Fingerprint([]byte("key"))},
		{want.GlobalEndpoint, "0ne00012345", "dev2", Fingerprint([]byte("key"))},
		{want.GlobalEndpoint, "0ne00012345", "dev1", Fingerprint([]byte("new key"))},
	} {
		if got.Matches(m[0], m[1], m[2], m[3]) {
			t.Errorf("Matches true for %v", m)
		}
	}
	if s.Path() != filepath.Join(dir, "state.json") {
		t.Errorf("Path %q", s.Path())
	}
}

func TestFileFormat(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.Save(sample()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "version": 1,
  "globalEndpoint": "global.azure-devices-provisioning.net",
  "idScope": "0ne00012345",
  "registrationId": "dev1",
  "credentialId": "` + Fingerprint([]byte("key")) + `",
  "assignedHub": "hub1.azure-devices.net",
  "deviceId": "dev1",
  "substatus": "initialAssignment",
  "etag": "\"abc\"",
  "lastRegistered": "2024-03-04T05:06:07Z"
}
`
	if string(b) != want {
		t.Errorf("file:\n%s\nwant:\n%s", b, want)
	}
}

func TestNoWriteWhenUnchanged(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	st := sample()
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	info1, _ := os.Stat(s.Path())
	for i := 0; i < 3; i++ {
		if err := s.Save(st); err != nil {
			t.Fatal(err)
		}
	}
	if s.writes != 1 {
		t.Errorf("writes = %d after identical saves, want 1", s.writes)
	}
	// A new Store (after a restart) that never loaded must not rewrite either.
	s2 := open(t, dir)
	if err := s2.Save(st); err != nil {
		t.Fatal(err)
	}
	// Nor one that loaded first.
	s3 := open(t, dir)
	if _, _, err := s3.Load(); err != nil {
		t.Fatal(err)
	}
	if err := s3.Save(st); err != nil {
		t.Fatal(err)
	}
	if s2.writes != 0 || s3.writes != 0 {
		t.Errorf("writes after restart: %d, %d", s2.writes, s3.writes)
	}
	info2, _ := os.Stat(s.Path())
	if !os.SameFile(info1, info2) || !info1.ModTime().Equal(info2.ModTime()) {
		t.Errorf("file replaced although unchanged")
	}
	// A real change is written.
	st.AssignedHub = "hub2.azure-devices.net"
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	if s.writes != 2 {
		t.Errorf("writes = %d after a change, want 2", s.writes)
	}
	if got, _, _ := open(t, dir).Load(); got.AssignedHub != "hub2.azure-devices.net" {
		t.Errorf("change not saved: %+v", got)
	}
}

func TestCorrupt(t *testing.T) {
	valid := `{"version":1,"registrationId":"r","assignedHub":"h","deviceId":"d","lastRegistered":"2024-01-01T00:00:00Z"}`
	cases := []struct {
		name, content, why string
	}{
		{"empty", "", "is empty"},
		{"truncated", valid[:40], "is not valid JSON (unexpected end of JSON input)"},
		{"garbage", "\x00\x00\x00\xff", "is not valid JSON (invalid character '\\x00' looking for beginning of value)"},
		{"no version", `{"registrationId":"r","assignedHub":"h","deviceId":"d"}`, "has an unknown version 0"},
		{"newer version", `{"version":2,"registrationId":"r","assignedHub":"h","deviceId":"d"}`, "was written by a newer agent (version 2)"},
		{"incomplete", `{"version":1,"registrationId":"r"}`, "is incomplete (missing assignedHub, deviceId)"},
		{"wrong type", `{"version":"1"}`, "is not valid JSON (json: cannot unmarshal string into Go struct field State.version of type int)"},
		{"huge", `{"version":1,"etag":"` + strings.Repeat("x", 70000) + `"}`, "is larger than 65536 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir)
			if err := os.WriteFile(s.Path(), []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, ok, err := s.Load()
			if ok || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ok=%v err=%v", ok, err)
			}
			moved := "state.json.corrupt-20240304T050607Z"
			want := fmt.Sprintf("state: corrupt state file: %s %s; moved it to %s, the agent will register with DPS again", s.Path(), tc.why, moved)
			if err.Error() != want {
				t.Errorf("error:\n got %s\nwant %s", err, want)
			}
			// The corrupt content is kept for a post-mortem...
			if b, err := os.ReadFile(filepath.Join(dir, moved)); err != nil || string(b) != tc.content {
				t.Errorf("corrupt file not kept: %v", err)
			}
			// ...and the caller starts afresh.
			if _, ok, err := s.Load(); ok || err != nil {
				t.Errorf("after move: ok=%v err=%v", ok, err)
			}
			if err := s.Save(sample()); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := s.Load(); !ok || err != nil {
				t.Errorf("after save: ok=%v err=%v", ok, err)
			}
		})
	}
}

func TestCorruptTwiceSameSecond(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	for i := 0; i < 3; i++ {
		if err := os.WriteFile(s.Path(), []byte("bad"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Load(); !errors.Is(err, ErrCorrupt) {
			t.Fatal(err)
		}
	}
	got, _ := filepath.Glob(filepath.Join(dir, "state.json.corrupt-*"))
	want := []string{
		filepath.Join(dir, "state.json.corrupt-20240304T050607Z"),
		filepath.Join(dir, "state.json.corrupt-20240304T050607Z-1"),
		filepath.Join(dir, "state.json.corrupt-20240304T050607Z-2"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v", got)
	}
}

// TestCrash: whatever a crash leaves behind, the live file stays intact.
func TestCrash(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	good := sample()
	if err := s.Save(good); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(s.Path())

	// 1. Crash after the temp file is written, before the rename.
	next := good
	next.AssignedHub = "hub2.azure-devices.net"
	crash := errors.New("power cut")
	s.beforeRename = func(tmp string) error {
		// The temp file is complete and private at this point.
		if st, err := os.Stat(tmp); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("temp file: %v %v", st, err)
		}
		return crash
	}
	if err := s.Save(next); !errors.Is(err, crash) {
		t.Fatalf("Save: %v", err)
	}
	if after, _ := os.ReadFile(s.Path()); string(after) != string(before) {
		t.Errorf("live file changed by an interrupted save")
	}
	// The failed save is retried: the content was not recorded as written.
	s.beforeRename = nil
	if err := s.Save(next); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := open(t, dir).Load(); got.AssignedHub != next.AssignedHub {
		t.Errorf("retry not saved")
	}

	// 2. A crash mid-write leaves a truncated temp file; a reboot must
	// ignore it and clean it up.
	before, _ = os.ReadFile(s.Path())
	for i, junk := range []string{"", `{"version":1,"assignedHub":"hub3`, "\x00\x00"} {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("state.json.tmp-%d", i)), []byte(junk), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s2 := open(t, dir)
	got, ok, err := s2.Load()
	if err != nil || !ok || got.AssignedHub != next.AssignedHub {
		t.Errorf("after crash: %+v ok=%v err=%v", got, ok, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "state.json.tmp-*")); len(left) != 0 {
		t.Errorf("leftovers not removed: %v", left)
	}
	if after, _ := os.ReadFile(s.Path()); string(after) != string(before) {
		t.Errorf("live file changed")
	}
}

func TestSaveRejectsInvalid(t *testing.T) {
	s := open(t, t.TempDir())
	cases := []struct {
		name string
		st   State
		want string
	}{
		{"no hub", State{RegistrationID: "r", DeviceID: "d"}, "state: invalid state: missing assignedHub"},
		{"nothing", State{}, "state: invalid state: missing registrationId, assignedHub, deviceId"},
		{"future version", State{Version: 9, RegistrationID: "r", AssignedHub: "h", DeviceID: "d"}, "state: invalid state: version 9, this agent writes 1"},
	}
	for _, tc := range cases {
		err := s.Save(tc.st)
		if !errors.Is(err, ErrInvalid) || err.Error() != tc.want {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := os.Stat(s.Path()); !os.IsNotExist(err) {
		t.Errorf("invalid state written")
	}
}

func TestClear(t *testing.T) {
	s := open(t, t.TempDir())
	if err := s.Clear(); err != nil {
		t.Fatalf("clear with no file: %v", err)
	}
	if err := s.Save(sample()); err != nil {
		t.Fatal(err)
	}
	if err := s.Clear(); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Load(); ok || err != nil {
		t.Errorf("after clear: ok=%v err=%v", ok, err)
	}
	// The same state can be saved again after a clear.
	if err := s.Save(sample()); err != nil || s.writes != 2 {
		t.Errorf("save after clear: %v writes=%d", err, s.writes)
	}
}

func TestUnreadableIsNotCorrupt(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	s := open(t, t.TempDir())
	if err := s.Save(sample()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.Path(), 0); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.Load()
	if err == nil || errors.Is(err, ErrCorrupt) {
		t.Errorf("unreadable file: %v", err)
	}
	if _, err := os.Stat(s.Path()); err != nil {
		t.Errorf("unreadable file moved: %v", err)
	}
}

func TestStateDirIsAFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(f); err == nil {
		t.Errorf("Open on a file succeeded")
	}
	if _, err := Open(""); err == nil {
		t.Errorf("Open(\"\") succeeded")
	}
}

func TestConcurrentSave(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	const n = 16
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := sample()
			st.AssignedHub = fmt.Sprintf("hub%d.azure-devices.net", i%4)
			for j := 0; j < 5; j++ {
				if err := s.Save(st); err != nil {
					t.Error(err)
				}
				if _, _, err := s.Load(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	got, ok, err := open(t, dir).Load()
	if err != nil || !ok || !strings.HasPrefix(got.AssignedHub, "hub") {
		t.Errorf("final state: %+v ok=%v err=%v", got, ok, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "state.json.*")); len(left) != 0 {
		t.Errorf("stray files: %v", left)
	}
}

func TestFingerprint(t *testing.T) {
	a, b := Fingerprint([]byte("key-a")), Fingerprint([]byte("key-b"))
	if a == b || !strings.HasPrefix(a, "sha256:") || len(a) != len("sha256:")+32 {
		t.Errorf("fingerprints %q %q", a, b)
	}
	if strings.Contains(a, "key-a") || a != Fingerprint([]byte("key-a")) {
		t.Errorf("fingerprint unstable or revealing: %q", a)
	}
}

// FuzzDecode: the state parser never panics, and whatever it accepts
// survives an encode/decode round trip unchanged.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"version":1,"registrationId":"r","assignedHub":"h","deviceId":"d","lastRegistered":"2024-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"version":1,"registrationId":"r","assignedHub":"h","deviceId":"d","extra":{"x":[1,2]}}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"lastRegistered":"not a time"}`))
	f.Add([]byte(""))
	f.Add([]byte("null"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, why := decode(data)
		if why != "" {
			if !reflect.DeepEqual(st, State{}) {
				t.Fatalf("rejected input returned a state: %+v", st)
			}
			return
		}
		enc, err := encode(st)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		back, why := decode(enc)
		if why != "" || !back.LastRegistered.Equal(st.LastRegistered) {
			t.Fatalf("round trip: %q %+v vs %+v", why, back, st)
		}
		// Times compare with Equal (the zone may be spelled differently).
		back.LastRegistered, st.LastRegistered = time.Time{}, time.Time{}
		if !reflect.DeepEqual(back, st) {
			t.Fatalf("round trip: %+v vs %+v", back, st)
		}
	})
}

// TestKnown: Known returns what the Store last read or wrote, without
// reading the disk.
func TestKnown(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if _, ok := s.Known(); ok {
		t.Fatal("known before any Load or Save")
	}
	want := sample()
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	os.Remove(s.Path()) // Known must not look
	got, ok := s.Known()
	if !ok || got.AssignedHub != want.AssignedHub || !got.LastRegistered.Equal(want.LastRegistered) {
		t.Errorf("Known = %+v, %v; want %+v", got, ok, want)
	}
}
