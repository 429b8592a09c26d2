package suggest

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestClosest(t *testing.T) {
	known := []string{"global_endpoint", "id_scope", "registration_id", "transport", "attestation", "payload", "ssh"}
	cases := []struct{ got, want string }{
		{"id_scop", "id_scope"},
		{"idscope", "id_scope"},
		{"ID_SCOPE", "id_scope"},
		{"registrationid", "registration_id"},
		{"registration-id", "registration_id"},
		{"transprot", "transport"},
		{"atestation", "attestation"},
		{"shh", "ssh"}, // one edit: what a key under 4 characters allows
		{"abh", ""},    // two edits
		{"sshh", "ssh"},
		{"colour", ""},
		{"x", ""},
		{strings.Repeat("a", 100), ""},
	}
	for _, tc := range cases {
		if got := Closest(tc.got, known); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.got, got, tc.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"kitten", "sitting", 3}, {"flaw", "lawn", 2}, {"same", "same", 0},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func FuzzClosest(f *testing.F) {
	known := []string{"hub", "dps", "streams", "state_dir"}
	for _, s := range []string{"hbu", "STREAMS", "", "state-dir"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, got string) {
		s := Closest(got, known)
		if s == "" {
			return
		}
		found := false
		for _, k := range known {
			found = found || k == s
		}
		if !found {
			t.Fatalf("Closest(%q) = %q, not a known key", got, s)
		}
		if d := editDistance(strings.ToLower(got), s); d > 3 {
			t.Fatalf("Closest(%q) = %q at distance %d", got, s, d)
		}
	})
}
