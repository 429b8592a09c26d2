package dps

import (
	"net/http"
	"testing"
	"time"
)

// With FastAssign the register answer carries the finished registration;
// a delay (AssignDelay) brings the poll back.
func TestFastAssign(t *testing.T) {
	tests := []struct {
		name       string
		delay      time.Duration
		wantStatus int
		wantState  string
	}{
		{"no delay", 0, http.StatusOK, StatusAssigned},
		{"with a delay", time.Second, http.StatusAccepted, StatusAssigning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.FastAssign, c.AssignDelay = true, tt.delay })
			e.mustPut(symmetricEnrollment("dev1", key1))
			r := e.register("dev1", deviceToken(e.clk, "dev1", key1), `{"registrationId":"dev1"}`)
			if r.status != tt.wantStatus || r.header.Get("Retry-After") != "" && tt.wantStatus == http.StatusOK {
				t.Fatalf("register: %d %v %s", r.status, r.header, r.body)
			}
			var st RegistrationOperationStatus
			r.decode(t, &st)
			if st.Status != tt.wantState || st.OperationID == "" {
				t.Fatalf("register answer %+v", st)
			}
			if tt.wantStatus == http.StatusOK && (st.RegistrationState == nil || st.RegistrationState.AssignedHub == "" || st.RegistrationState.DeviceID != "dev1") {
				t.Fatalf("registration state %+v", st.RegistrationState)
			}
		})
	}
}
