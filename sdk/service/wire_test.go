package service

import (
	"testing"
	"time"
)

// TestWirePins pins every wire string and number against accidental edits;
// the sources are cited where they are defined (wire.go).
func TestWirePins(t *testing.T) {
	pins := []struct{ got, want string }{
		{apiVersionHub, "2021-04-12"},
		{apiVersionStreams, "2020-09-30"},
		{apiVersionDPS, "2021-10-01"},
		{queryAPIVersion, "api-version"},
		{hdrStreamConnectTimeout, "iothub-streaming-connect-timeout-in-seconds"},
		{hdrStreamResponseTimeout, "iothub-streaming-response-timeout-in-seconds"},
		{hdrStreamIsAccepted, "iothub-streaming-is-accepted"},
		{hdrStreamURL, "iothub-streaming-url"},
		{hdrStreamAuthToken, "iothub-streaming-auth-token"},
		{hdrHubErrorCode, "iothub-errorcode"},
		{hdrDPSErrorCode, "x-ms-error-code"},
		{hdrRetryAfter, "Retry-After"},
		{hdrContinuation, "x-ms-continuation"},
		{hdrMaxItemCount, "x-ms-max-item-count"},
		{hdrItemType, "x-ms-item-type"},
		{pathQuery, "/devices/query"},
		{hdrIfMatch, "If-Match"},
		{contentTypeJSON, "application/json; charset=utf-8"},
		{streamAccepted, "true"},
		{collEnrollments, "enrollments"},
		{collEnrollmentGroups, "enrollmentGroups"},
		{collRegistrations, "registrations"},
		{codeDeviceNotOnline, "DeviceNotOnline"},
		{codeGatewayTimeout, "GatewayTimeout"},
		{errorNames[404103], "DeviceNotOnline"},
		{errorNames[429001], "ThrottlingException"},
		{errorNames[504101], "GatewayTimeout"},
		{errorNames[404001], "DeviceNotFound"},
		{errorNames[412001], "PreconditionFailed"},
	}
	for _, p := range pins {
		if p.got != p.want {
			t.Errorf("%q, want %q", p.got, p.want)
		}
	}
	durations := []struct{ got, want time.Duration }{
		{DefaultStreamTimeout, 30 * time.Second},
		{DefaultMethodTimeout, 30 * time.Second},
		{MinMethodTimeout, 5 * time.Second},
		{MaxMethodTimeout, 300 * time.Second},
	}
	for _, d := range durations {
		if d.got != d.want {
			t.Errorf("%v, want %v", d.got, d.want)
		}
	}
}

func TestEscapePath(t *testing.T) {
	tests := []struct {
		segs []string
		want string
	}{
		{[]string{"twins", "dev1", "methods"}, "/twins/dev1/methods"},
		{[]string{"twins", "a b/c#d?e%f", "streams", "ssh"}, "/twins/a%20b%2Fc%23d%3Fe%25f/streams/ssh"},
		{[]string{"devices", "x:y@z$+=,;!*'()"}, "/devices/x%3Ay%40z%24%2B%3D%2C%3B%21%2A%27%28%29"},
	}
	for _, tt := range tests {
		if got := escapePath(tt.segs...); got != tt.want {
			t.Errorf("%q → %q, want %q", tt.segs, got, tt.want)
		}
	}
}

func TestIfMatch(t *testing.T) {
	tests := []struct{ etag, hub, dps string }{
		{"", "*", ""},
		{"*", "*", "*"},
		{"AAAAAAAAAAE=", `"AAAAAAAAAAE="`, "AAAAAAAAAAE="},
		{`"q"`, `"q"`, `"q"`},
	}
	for _, tt := range tests {
		if got := ifMatch(tt.etag).Get("If-Match"); got != tt.hub {
			t.Errorf("hub %q → %q, want %q", tt.etag, got, tt.hub)
		}
		if got := dpsIfMatch(tt.etag).Get("If-Match"); got != tt.dps {
			t.Errorf("dps %q → %q, want %q", tt.etag, got, tt.dps)
		}
	}
}
