package logsink

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/config"
)

func newRotating(t *testing.T, path string, maxSize int64, maxFiles int) (*rotatingFile, *syncBuffer, *counters) {
	t.Helper()
	var stderr syncBuffer
	cnt := &counters{}
	rep := &reporter{w: &stderr, what: "file " + path, cnt: cnt}
	r, err := openRotating(path, maxSize, maxFiles, time.Now, rep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, &stderr, cnt
}

// files returns name → content of every file in dir.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

func names(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestRotationBoundaries(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   map[string]string
	}{
		{"fills exactly to max size", []string{"aaaaa", "bbbbb"},
			map[string]string{"agent.log": "aaaaabbbbb"}},
		{"one byte over rotates", []string{"aaaaa", "bbbbb", "c"},
			map[string]string{"agent.log": "c", "agent.log.1": "aaaaabbbbb"}},
		{"record that would cross rotates first", []string{"aaaaaaa", "bbbb"},
			map[string]string{"agent.log": "bbbb", "agent.log.1": "aaaaaaa"}},
		{"record longer than max size is cut", []string{"x", strings.Repeat("y", 25)},
			map[string]string{"agent.log": "yyyyyyyyy\n", "agent.log.1": "x"}},
		{"oldest deleted at max files", []string{"1111111111", "2222222222", "3333333333", "4444444444"},
			map[string]string{"agent.log": "4444444444", "agent.log.1": "3333333333", "agent.log.2": "2222222222"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r, _, cnt := newRotating(t, filepath.Join(dir, "agent.log"), 10, 2)
			for _, w := range tt.writes {
				if n, err := r.Write([]byte(w)); err != nil || n != len(w) {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			got := files(t, dir)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("files = %q, want %q", got, tt.want)
			}
			if st := cnt.snapshot(); st.Dropped != 0 || st.Written != uint64(len(tt.writes)) {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestRotationThroughSinkBounded(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Log{Level: config.LevelInfo, Format: config.LogText, Destination: config.LogFile,
		File: filepath.Join(dir, "logs", "agent.log"), MaxSize: 512, MaxFiles: 3}
	s, err := New(cfg, Options{Stderr: &syncBuffer{}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		s.Logger().Info("stream opened", "stream", i, "device", "dev1")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := files(t, filepath.Join(dir, "logs"))
	if want := []string{"agent.log", "agent.log.1", "agent.log.2", "agent.log.3"}; fmt.Sprint(names(got)) != fmt.Sprint(want) {
		t.Fatalf("files = %v, want %v", names(got), want)
	}
	for name, c := range got {
		if len(c) > 512 {
			t.Errorf("%s is %d bytes, over max size", name, len(c))
		}
		if !strings.HasSuffix(c, "\n") || !strings.HasPrefix(c, "time=") {
			t.Errorf("%s does not hold whole records: %q", name, c)
		}
	}
	// Newest last: agent.log holds stream=499, and .1 is older than it.
	if !strings.Contains(got["agent.log"], "stream=499 ") {
		t.Errorf("agent.log lacks the newest record")
	}
	if s.Stats().Written != 500 {
		t.Errorf("stats = %+v", s.Stats())
	}
}

func TestFilePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no unix modes")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.log")
	// An existing file with loose permissions is tightened.
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	r, _, _ := newRotating(t, path, 16, 2)
	for i := 0; i < 10; i++ {
		r.Write([]byte("0123456789\n"))
	}
	for name := range files(t, dir) {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %04o, want 0600", name, st.Mode().Perm())
		}
	}
}

func TestAppendsToExistingAndRemovesExtra(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.log")
	for name, c := range map[string]string{"agent.log": "12345", "agent.log.1": "a", "agent.log.2": "b", "agent.log.3": "c", "agent.log.7": "d", "agent.log.old": "keep"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r, _, _ := newRotating(t, path, 10, 2)
	r.Write([]byte("678"))
	want := map[string]string{"agent.log": "12345678", "agent.log.1": "a", "agent.log.2": "b", "agent.log.old": "keep"}
	if got := files(t, dir); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("files = %q, want %q", got, want)
	}
}

func TestRotateFailureIsCountedAndBounded(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.log")
	// A non-empty directory where the rotated file must go: the shift
	// fails whatever our privileges.
	if err := os.MkdirAll(filepath.Join(dir, "agent.log.1", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	r, stderr, cnt := newRotating(t, path, 10, 1)
	for i := 0; i < 20; i++ {
		r.Write([]byte("0123456\n"))
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 10 {
		t.Errorf("agent.log grew to %d bytes past max size", st.Size())
	}
	s := cnt.snapshot()
	if s.Dropped == 0 || s.LastError == "" {
		t.Errorf("stats = %+v, want dropped records and an error", s)
	}
	if n := strings.Count(stderr.String(), "failed"); n < 1 {
		t.Errorf("no stderr notice: %q", stderr.String())
	}
}

func TestOpenFailure(t *testing.T) {
	dir := t.TempDir()
	_, err := New(config.Log{Destination: config.LogFile, File: dir, MaxSize: 100, MaxFiles: 1, Format: config.LogText}, Options{Stderr: &bytes.Buffer{}})
	if err == nil {
		t.Fatal("New opened a directory as the log file")
	}
}
