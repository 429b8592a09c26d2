package dps

import (
	"testing"
	"time"
)

// TestWireConstants pins every wire literal's exact bytes.
func TestWireConstants(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{DefaultGlobalEndpoint, "global.azure-devices-provisioning.net"},
		{DefaultAPIVersion, "2021-06-01"},
		{TransportHTTPS, "https"},
		{TransportMQTT, "mqtt"},
		{TransportMQTTWS, "mqtt-ws"},
		{portHTTPS, "443"},
		{portMQTT, "8883"},
		{wsPath, "/$iothub/websocket"},
		{wsSubprotocol, "mqtt"},
		{pathRegistrations, "/registrations/"},
		{pathRegister, "/register"},
		{pathOperations, "/operations/"},
		{queryAPIVersion, "api-version"},
		{headerAccept, "Accept"},
		{headerContentType, "Content-Type"},
		{headerAuthorization, "Authorization"},
		{headerUserAgent, "User-Agent"},
		{headerErrorCode, "x-ms-error-code"},
		{mimeJSON, "application/json"},
		{mimeJSONCharset, "application/json; charset=utf-8"},
		{StatusUnassigned, "unassigned"},
		{StatusAssigning, "assigning"},
		{StatusAssigned, "assigned"},
		{StatusFailed, "failed"},
		{StatusDisabled, "disabled"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	for _, tc := range []struct{ got, want time.Duration }{
		{DefaultPollInterval, 2 * time.Second},
		{minPollInterval, time.Second},
		{maxPollInterval, 5 * time.Minute},
		{DefaultRequestTimeout, 30 * time.Second},
		{sasTTL, time.Hour},
	} {
		if tc.got != tc.want {
			t.Errorf("got %v, want %v", tc.got, tc.want)
		}
	}
}
