package retry

import (
	"net/http"
	"testing"
	"time"
)

var epoch = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"3", 3 * time.Second, true},
		{" 120\t", 120 * time.Second, true},
		{"007", 7 * time.Second, true},
		{"Fri, 01 Mar 2024 12:00:30 GMT", 30 * time.Second, true}, // IMF-fixdate
		{"Friday, 01-Mar-24 12:01:00 GMT", time.Minute, true},     // RFC 850
		{"Fri Mar  1 12:00:05 2024", 5 * time.Second, true},       // asctime
		{"Thu, 29 Feb 2024 12:00:00 GMT", 0, true},                // in the past: now
		{"", 0, false},
		{"   ", 0, false},
		{"-5", 0, false},
		{"+5", 0, false},
		{"1.5", 0, false},
		{"5s", 0, false},
		{"0x10", 0, false},
		{"99999999999999999999999", 0, false}, // overflow
		{"3153600001", 0, false},              // > 100 years
		{"tomorrow", 0, false},
		{"Fri, 01 Mar 2024 12:00:30 PST", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.in, epoch)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "5", "120", "-1", "1.5", "", "Fri, 01 Mar 2024 12:00:30 GMT",
		"Friday, 01-Mar-24 12:01:00 GMT", "Fri Mar  1 12:00:05 2024", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseRetryAfter(s, epoch)
		if d < 0 {
			t.Fatalf("negative duration %v for %q", d, s)
		}
		if !ok && d != 0 {
			t.Fatalf("not ok but d=%v for %q", d, s)
		}
		if d > maxRetryAfterSeconds*time.Second {
			t.Fatalf("too large %v for %q", d, s)
		}
		// Round trip: whole seconds print back to the same value.
		if ok {
			secs := d / time.Second
			if d2, ok2 := ParseRetryAfter(formatSecs(secs), epoch); !ok2 || d2 != secs*time.Second {
				t.Fatalf("seconds round trip of %v failed", d)
			}
			if d == d.Truncate(time.Second) {
				h := epoch.Add(d).Format(http.TimeFormat)
				if d3, ok3 := ParseRetryAfter(h, epoch); !ok3 || d3 != d {
					t.Fatalf("date round trip %q = %v, %v; want %v", h, d3, ok3, d)
				}
			}
		}
	})
}

func formatSecs(n time.Duration) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}
