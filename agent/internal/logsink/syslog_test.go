//go:build unix

package logsink

import (
	"bufio"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/config"
)

// sockPath returns a short socket path (unix socket paths are limited to
// about 100 bytes, and test temp dirs can be long).
func sockPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ls")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "log")
}

// listenDgram binds a datagram socket like syslogd's /dev/log.
func listenDgram(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readDgram(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no syslog message: %v", err)
	}
	return string(buf[:n])
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestSyslogDatagramSeverities(t *testing.T) {
	path := sockPath(t)
	srv := listenDgram(t, path)
	s, err := New(logCfg(config.LogSyslog, config.LogText, config.LevelDebug), Options{SyslogAddr: path, Stderr: &syncBuffer{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pid := strconv.Itoa(os.Getpid())
	tests := []struct {
		log  func(msg string)
		pri  string
		body string
	}{
		{func(m string) { s.Logger().Debug(m) }, "<31>", "level=DEBUG msg=d1"},
		{func(m string) { s.Logger().Info(m, "device", "dev1") }, "<30>", "level=INFO msg=i1 device=dev1"},
		{func(m string) { s.Logger().Warn(m) }, "<28>", "level=WARN msg=w1"},
		{func(m string) { s.Logger().Error(m) }, "<27>", "level=ERROR msg=e1"},
		{func(m string) { s.Logger().Log(t.Context(), slog.LevelError+4, m) }, "<27>", "level=ERROR+4 msg=x1"},
	}
	for _, tt := range tests {
		msg := strings.Fields(tt.body)[1][len("msg="):]
		tt.log(msg)
		got := readDgram(t, srv)
		if !strings.HasPrefix(got, tt.pri) {
			t.Errorf("%q: want PRI %s", got, tt.pri)
		}
		if !strings.Contains(got, " porthole-agent["+pid+"]: ") {
			t.Errorf("%q: no tag", got)
		}
		if !strings.HasSuffix(got, "]: "+tt.body) {
			t.Errorf("%q: want body %q (no time attr, no newline)", got, tt.body)
		}
	}
	if st := s.Stats(); st.Written != uint64(len(tests)) || st.Dropped != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestSyslogStreamFallback(t *testing.T) {
	path := sockPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lines := make(chan string, 4)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	s, err := New(logCfg(config.LogSyslog, config.LogJSON, config.LevelInfo), Options{SyslogAddr: path, Stderr: &syncBuffer{}})
	if err != nil {
		t.Fatal(err)
	}
	s.Logger().Info("one")
	s.Logger().Warn("two")
	for _, want := range []string{`<30>`, `<28>`} {
		select {
		case l := <-lines:
			if !strings.HasPrefix(l, want) || !strings.Contains(l, `: {"level":`) {
				t.Errorf("line %q, want prefix %s and a JSON body", l, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no line on the stream socket")
		}
	}
	s.Close()
	wg.Wait()
}

// TestSyslogMissingSocketRecovers: with no syslog socket the records go
// to stderr, and stderr says so once; when syslogd appears they go there
// again.
func TestSyslogMissingSocketRecovers(t *testing.T) {
	path := sockPath(t)
	clock := &fakeClock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
	var stderr syncBuffer
	s, err := New(logCfg(config.LogSyslog, config.LogText, config.LevelInfo), Options{SyslogAddr: path, Stderr: &stderr, Now: clock.Now})
	if err != nil {
		t.Fatalf("New must not fail when syslogd is not up yet: %v", err)
	}
	defer s.Close()
	for i := 0; i < 5; i++ {
		s.Logger().Info("diverted", "n", i)
	}
	st := s.Stats()
	if st.Diverted != 5 || st.Dropped != 0 || st.Written != 0 || st.LastError == "" {
		t.Fatalf("stats = %+v", st)
	}
	if n := strings.Count(stderr.String(), "writing the log to stderr until it is back"); n != 1 {
		t.Fatalf("stderr notices = %d, want 1: %q", n, stderr.String())
	}
	for i := 0; i < 5; i++ {
		if want := "msg=diverted n=" + strconv.Itoa(i) + "\n"; !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q: %q", want, stderr.String())
		}
	}

	srv := listenDgram(t, path)
	s.Logger().Info("still waiting") // within the redial pause: to stderr
	clock.Add(2 * syslogRedial)
	s.Logger().Info("back")
	if got := readDgram(t, srv); !strings.HasSuffix(got, "msg=back") {
		t.Fatalf("got %q", got)
	}
	if st := s.Stats(); st.Diverted != 6 || st.Dropped != 0 || st.Written != 1 {
		t.Errorf("stats = %+v", st)
	}
	if !strings.Contains(stderr.String(), "works again; 6 record(s) went to stderr meanwhile, 0 were lost") {
		t.Errorf("stderr = %q", stderr.String())
	}
}

func TestSyslogReconnectAfterDaemonRestart(t *testing.T) {
	path := sockPath(t)
	srv := listenDgram(t, path)
	s, err := New(logCfg(config.LogSyslog, config.LogText, config.LevelInfo), Options{SyslogAddr: path, Stderr: &syncBuffer{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Logger().Info("first")
	readDgram(t, srv)
	// syslogd restarts: a new socket at the same path.
	srv.Close()
	os.Remove(path)
	srv2 := listenDgram(t, path)
	s.Logger().Info("second")
	if got := readDgram(t, srv2); !strings.HasSuffix(got, "msg=second") {
		t.Fatalf("got %q", got)
	}
	if st := s.Stats(); st.Dropped != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestSyslogFormatPinned(t *testing.T) {
	ts := time.Date(2024, 3, 7, 9, 5, 1, 123456000, time.UTC)
	w := &syslogWriter{tag: "porthole-agent", hostname: "gw1", pid: "42", now: time.Now}
	w.cur = recordMeta{level: slog.LevelWarn, time: ts}
	line := "level=WARN msg=x\n"

	w.format = RFC5424
	if got, want := string(w.format1([]byte(line))), "<28>1 2024-03-07T09:05:01.123456Z gw1 porthole-agent 42 - - level=WARN msg=x"; got != want {
		t.Errorf("RFC 5424:\n got %q\nwant %q", got, want)
	}
	w.format = RFC3164
	w.cur.time = time.Date(2024, 3, 7, 9, 5, 1, 0, time.Local)
	if got, want := string(w.format1([]byte(line))), "<28>Mar  7 09:05:01 porthole-agent[42]: level=WARN msg=x"; got != want {
		t.Errorf("RFC 3164:\n got %q\nwant %q", got, want)
	}
	long := strings.Repeat("a", 3*maxSyslogMessage)
	if got := w.format1([]byte(long)); len(got) != maxSyslogMessage {
		t.Errorf("long message: %d bytes, want %d", len(got), maxSyslogMessage)
	}
}

func TestSeverity(t *testing.T) {
	tests := []struct {
		l    slog.Level
		want int
	}{
		{slog.LevelDebug - 4, 7}, {slog.LevelDebug, 7}, {slog.LevelInfo - 1, 7},
		{slog.LevelInfo, 6}, {slog.LevelInfo + 2, 6}, {slog.LevelWarn, 4},
		{slog.LevelError - 1, 4}, {slog.LevelError, 3}, {slog.LevelError + 8, 3},
	}
	for _, tt := range tests {
		if got := severity(tt.l); got != tt.want {
			t.Errorf("severity(%v) = %d, want %d", tt.l, got, tt.want)
		}
	}
}
