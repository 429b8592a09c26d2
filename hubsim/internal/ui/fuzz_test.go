package ui

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
)

// FuzzSafeNext: whatever the login form's next field says, the redirect
// stays on the dashboard (same origin, under Prefix).
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/hubsim/ui/devices", "https://evil.example/", "//evil.example", "/hubsim/ui/..//x",
		`/hubsim/ui/\evil`, "/metrics", "", "/hubsim/ui/%2F%2Fevil", "javascript:alert(1)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		u, err := url.Parse(got)
		if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(got, Prefix) || strings.Contains(got, "//") || strings.Contains(got, `\`) {
			t.Fatalf("safeNext(%q) = %q: leaves the dashboard", next, got)
		}
	})
}

// FuzzLogRing: any split of any input keeps only whole, trimmed,
// non-empty lines, at most the ring's size, and never fails.
func FuzzLogRing(f *testing.F) {
	f.Add([]byte("a\nb\n"), uint8(1))
	f.Add([]byte("\n\n x \n"), uint8(0))
	f.Add([]byte("no newline"), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		l := NewLogRing(4)
		c := int(cut) % (len(data) + 1)
		for _, part := range [][]byte{data[:c], data[c:]} {
			if n, err := l.Write(part); n != len(part) || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
		}
		lines := l.Lines()
		if len(lines) > 4 {
			t.Fatalf("%d lines kept, ring of 4", len(lines))
		}
		for _, ln := range lines {
			if len(ln) == 0 || bytes.IndexByte(ln, '\n') >= 0 || !bytes.Equal(ln, bytes.TrimSpace(ln)) || !bytes.Contains(data, ln) {
				t.Fatalf("kept line %q from %q", ln, data)
			}
		}
	})
}
