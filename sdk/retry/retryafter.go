package retry

import (
	"net/http"
	"strings"
	"time"
)

// maxRetryAfterSeconds bounds delay-seconds so the result fits a
// time.Duration with room to spare (about 292 years fit; we accept 100).
const maxRetryAfterSeconds = 100 * 365 * 24 * 3600

// ParseRetryAfter parses a Retry-After value (RFC 9110 §10.2.3): either
// delay-seconds (1*DIGIT) or an HTTP-date (IMF-fixdate, and the obsolete
// RFC 850 and asctime forms that RFC 9110 says recipients must accept).
// Surrounding whitespace is ignored. An HTTP-date in the past yields (0, true).
// Negative numbers, fractions, signs, empty or unparsable values, and
// absurdly large values yield (0, false).
//
// DPS itself sends integer seconds (Azure/azure-iot-sdk-c
// provisioning_client/inc/azure_prov_client/prov_transport.h quotes both
// RFC forms; the C client only understands the integer one), but porthole
// understands both.
func ParseRetryAfter(h string, now time.Time) (time.Duration, bool) {
	h = strings.Trim(h, " \t")
	if h == "" {
		return 0, false
	}
	if isDigits(h) {
		var secs int64
		for i := 0; i < len(h); i++ {
			secs = secs*10 + int64(h[i]-'0')
			if secs > maxRetryAfterSeconds {
				return 0, false
			}
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(h)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		return 0, true
	}
	if d > maxRetryAfterSeconds*time.Second {
		return 0, false
	}
	return d, true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}
