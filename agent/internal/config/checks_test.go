package config

import (
	"regexp"
	"strconv"
	"testing"
)

// The hand-written character checks replace these patterns; the fuzz test
// holds them to the same answers.
var (
	refRegIDChars = regexp.MustCompile(`^[A-Za-z0-9._:-]*$`)
	refRegIDLast  = regexp.MustCompile(`[A-Za-z0-9-]$`)
	refName       = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	refAlnum      = regexp.MustCompile(`^[A-Za-z0-9]+$`)
	refYAMLLine   = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

func FuzzCharChecks(f *testing.F) {
	for _, s := range []string{"", "a", "sn-0042", "dev:1", "dev.", "a b", "ssh", "0ne00012345", "é", "a\n", "-",
		"yaml: line 3: bad", "yaml: line x: bad", "yaml: line 3: a\nb", "yaml: line 99999999999999999999: big", "yaml: line : x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validName(s), refName.MatchString(s); got != want {
			t.Errorf("validName(%q) = %v, want %v", s, got, want)
		}
		if got, want := allBytes(s, isAlnum), refAlnum.MatchString(s); got != want {
			t.Errorf("alnum(%q) = %v, want %v", s, got, want)
		}
		if s != "" {
			if got, want := allBytes(s, isRegIDByte), refRegIDChars.MatchString(s); got != want {
				t.Errorf("regID chars(%q) = %v, want %v", s, got, want)
			}
			last := s[len(s)-1]
			if got, want := isAlnum(last) || last == '-', refRegIDLast.MatchString(s); got != want {
				t.Errorf("regID last(%q) = %v, want %v", s, got, want)
			}
		}
		line, problem, ok := yamlLine(s)
		m := refYAMLLine.FindStringSubmatch(s)
		if ok != (m != nil) {
			t.Fatalf("yamlLine(%q) ok = %v, regexp %v", s, ok, m)
		}
		if ok {
			wantLine, _ := strconv.Atoi(m[1])
			if line != wantLine || problem != m[2] {
				t.Errorf("yamlLine(%q) = %d, %q; want %d, %q", s, line, problem, wantLine, m[2])
			}
		}
	})
}
