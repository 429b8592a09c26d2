package ui

import (
	"strings"
	"testing"
)

func TestLogRing(t *testing.T) {
	tests := []struct {
		name   string
		keep   int
		writes []string
		want   string // Lines joined by |
	}{
		{"whole lines", 3, []string{"a\n", "b\n"}, "b|a"},
		{"split line", 3, []string{"a", "b\nc", "\n"}, "c|ab"},
		{"only the last n", 2, []string{"1\n2\n3\n"}, "3|2"},
		{"blank lines skipped", 3, []string{"\n \nx\n"}, "x"},
		{"unfinished line not shown", 3, []string{"x\ny"}, "x"},
		{"overlong line dropped", 3, []string{strings.Repeat("z", maxLogLine+1) + "\nok\n"}, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLogRing(tt.keep)
			for _, w := range tt.writes {
				if n, err := l.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			var got []string
			for _, ln := range l.Lines() {
				got = append(got, string(ln))
			}
			if s := strings.Join(got, "|"); s != tt.want {
				t.Errorf("Lines = %q, want %q", s, tt.want)
			}
		})
	}
}

func TestEventFilter(t *testing.T) {
	line := `{"hub":"h","deviceId":"pump-7","properties":{"kind":"reading"},"body":"eyJ0IjoyMX0="}` // body {"t":21}
	tests := []struct {
		device, contains string
		notice           bool
		want             bool
	}{
		{"", "", false, true},
		{"pump", "", false, true},
		{"valve", "", false, false},
		{"", `"t":21`, false, true},
		{"", "reading", false, true},
		{"", "kind", false, true},
		{"", "22", false, false},
		{"pump", "reading", false, true},
		{"valve", "reading", false, false},
		{"valve", "x", true, true}, // notices pass every filter
	}
	for _, tt := range tests {
		s := &sseWriter{device: tt.device, contains: tt.contains}
		l := line
		if tt.notice {
			l = `{"dropped":3}`
		}
		if got := s.keep([]byte(l)); got != tt.want {
			t.Errorf("device %q contains %q notice %v: keep = %v, want %v", tt.device, tt.contains, tt.notice, got, tt.want)
		}
	}
}
