package logsink

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-iot/porthole/agent/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func logCfg(dest config.LogDestination, format config.LogFormat, level config.LogLevel) config.Log {
	return config.Log{Level: level, Format: format, Destination: dest, MaxSize: config.DefaultLogMaxSize, MaxFiles: config.DefaultLogMaxFiles}
}

func TestStderrFormats(t *testing.T) {
	tests := []struct {
		format config.LogFormat
		check  func(t *testing.T, out string)
	}{
		{config.LogText, func(t *testing.T, out string) {
			if !strings.Contains(out, "level=INFO msg=connected device=dev1\n") {
				t.Errorf("text line = %q", out)
			}
		}},
		{config.LogJSON, func(t *testing.T, out string) {
			var m map[string]any
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatalf("not JSON: %q: %v", out, err)
			}
			if m["msg"] != "connected" || m["device"] != "dev1" || m["level"] != "INFO" {
				t.Errorf("JSON record = %v", m)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.format), func(t *testing.T) {
			var buf syncBuffer
			s, err := New(logCfg(config.LogStderr, tt.format, config.LevelInfo), Options{Stderr: &buf})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.Logger().Info("connected", "device", "dev1")
			tt.check(t, buf.String())
			if st := s.Stats(); st.Written != 1 || st.Dropped != 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Log
	}{
		{"destination", logCfg("kafka", config.LogText, config.LevelInfo)},
		{"format", logCfg(config.LogStderr, "xml", config.LevelInfo)},
		{"file without name", logCfg(config.LogFile, config.LogText, config.LevelInfo)},
		{"file zero size", config.Log{Destination: config.LogFile, File: "x.log", MaxSize: 0, MaxFiles: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, Options{Stderr: &syncBuffer{}})
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
}

func TestSetLevelLive(t *testing.T) {
	var buf syncBuffer
	s, err := New(logCfg(config.LogStderr, config.LogText, config.LevelWarn), Options{Stderr: &buf})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	derived := s.Logger().With("device", "dev1").WithGroup("g")

	derived.Info("hidden-1")
	s.Logger().Debug("hidden-2")
	s.SetLevel(slog.LevelDebug)
	if s.Level() != slog.LevelDebug {
		t.Fatalf("Level = %v", s.Level())
	}
	derived.Info("shown-1")
	s.Logger().Debug("shown-2")
	s.SetLevel(slog.LevelError)
	derived.Warn("hidden-3")

	out := buf.String()
	for _, w := range []string{"shown-1", "shown-2"} {
		if !strings.Contains(out, w) {
			t.Errorf("missing %s in %q", w, out)
		}
	}
	for _, w := range []string{"hidden-1", "hidden-2", "hidden-3"} {
		if strings.Contains(out, w) {
			t.Errorf("%s logged at the wrong level: %q", w, out)
		}
	}
}

func TestCloseIdempotentDropsLater(t *testing.T) {
	var buf syncBuffer
	s, err := New(logCfg(config.LogStderr, config.LogText, config.LevelInfo), Options{Stderr: &buf})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Logger().Info("after close")
	if buf.String() != "" {
		t.Errorf("wrote after Close: %q", buf.String())
	}
}

func TestRedactThroughSink(t *testing.T) {
	var buf syncBuffer
	s, err := New(logCfg(config.LogStderr, config.LogJSON, config.LevelInfo), Options{Stderr: &buf})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok := "SharedAccessSignature sr=0ne00000001%2Fregistrations%2Fdev1&sig=c2VjcmV0c2lnbmF0dXJl%3D&se=1700000000&skn=registration"
	s.Logger().With("token", tok).Info("registering", "auth", tok, "device", "dev1")
	out := buf.String()
	if strings.Contains(out, "c2VjcmV0c2lnbmF0dXJl") {
		t.Fatalf("signature leaked: %s", out)
	}
	if !strings.Contains(out, `"token":"[redacted]"`) || !strings.Contains(out, "sig=…") || !strings.Contains(out, `"device":"dev1"`) {
		t.Errorf("unexpected redaction: %s", out)
	}
}

// TestJSONDurationsAsText: JSON logs carry durations as Go duration text,
// at the top level, in groups and in WithAttrs, on every destination that
// writes JSON.
func TestJSONDurationsAsText(t *testing.T) {
	tests := []struct {
		name string
		log  func(l *slog.Logger)
		want map[string]any // expected keys (nested groups as maps)
	}{
		{"attr", func(l *slog.Logger) { l.Info("m", "retry_in", 2*time.Second) }, map[string]any{"retry_in": "2s"}},
		{"group", func(l *slog.Logger) { l.Info("m", slog.Group("g", "wait", 90*time.Second)) },
			map[string]any{"g": map[string]any{"wait": "1m30s"}}},
		{"with", func(l *slog.Logger) { l.With("grace", 10*time.Second).Info("m") }, map[string]any{"grace": "10s"}},
		{"not a duration", func(l *slog.Logger) { l.Info("m", "n", 5) }, map[string]any{"n": float64(5)}},
	}
	for _, dest := range []config.LogDestination{config.LogStderr, config.LogSyslog} {
		for _, tt := range tests {
			t.Run(string(dest)+"/"+tt.name, func(t *testing.T) {
				var buf syncBuffer
				// A syslog destination with no socket writes to stderr.
				s, err := New(logCfg(dest, config.LogJSON, config.LevelInfo), Options{Stderr: &buf, SyslogAddr: filepath.Join(t.TempDir(), "none")})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				tt.log(s.Logger())
				line := buf.String()
				if i := strings.LastIndexByte(strings.TrimSuffix(line, "\n"), '\n'); i >= 0 {
					line = line[i+1:] // after the syslog fallback notice
				}
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("not JSON: %q: %v", line, err)
				}
				for k, v := range tt.want {
					if !reflect.DeepEqual(m[k], v) {
						t.Errorf("%s = %#v, want %#v (%s)", k, m[k], v, line)
					}
				}
			})
		}
	}
}
