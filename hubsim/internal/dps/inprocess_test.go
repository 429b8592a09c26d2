package dps

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

// The in-process device API goes through the same authentication, quota
// and registration engine as HTTPS: same statuses, Retry-After and result.
func TestDeviceInProcess(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Quota = Quota{Limit: 6, Window: time.Minute, Burst: -1} })
	for _, id := range []string{"d0", "d1"} {
		e.mustPut(symmetricEnrollment(id, key1))
	}
	call := func(op, id, tok, opID string) DeviceAnswer {
		t.Helper()
		a, err := e.svc.Device(t.Context(), DeviceCall{Op: op, IDScope: testScope, RegistrationID: id, SAS: tok, OperationID: opID, Transport: "mqtt"})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	tests := []struct {
		name       string
		op, id     string
		tok        string
		wantStatus int
		wantRA     time.Duration
	}{
		{"bad token", OpRegister, "d0", deviceToken(e.clk, "d0", "bm90LXRoZS1rZXk="), http.StatusUnauthorized, 0},
		{"first admitted", OpRegister, "d0", deviceToken(e.clk, "d0", key1), http.StatusAccepted, time.Second},
		{"second throttled", OpRegister, "d1", deviceToken(e.clk, "d1", key1), http.StatusTooManyRequests, 10 * time.Second},
		{"lookup counts too", OpLookup, "d0", deviceToken(e.clk, "d0", key1), http.StatusTooManyRequests, 20 * time.Second},
	}
	var opID string
	for _, tt := range tests {
		a := call(tt.op, tt.id, tt.tok, "")
		if a.Status != tt.wantStatus || a.RetryAfter != tt.wantRA {
			t.Errorf("%s: status %d retry-after %v, want %d %v", tt.name, a.Status, a.RetryAfter, tt.wantStatus, tt.wantRA)
		}
		if a.Status >= 400 && a.Error == nil {
			t.Errorf("%s: no error details", tt.name)
		}
		if a.Status == http.StatusAccepted {
			opID = a.OperationID
		}
	}
	a := call(OpPoll, "d0", deviceToken(e.clk, "d0", key1), opID)
	if a.Status != http.StatusOK || a.OpStatus != StatusAssigned || a.Result == nil || a.Result.AssignedHub == "" {
		t.Fatalf("poll: %+v", a)
	}
	if _, err := e.svc.Device(t.Context(), DeviceCall{Op: "bogus"}); err == nil {
		t.Error("unknown op accepted")
	}
}

// SetQuota changes the rate at once and keeps the slots promised in
// earlier Retry-Afters.
func TestSetQuota(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Quota = Quota{Limit: 6, Window: time.Minute, Burst: -1} })
	ids := []string{"d0", "d1", "d2", "d3"}
	for _, id := range ids {
		e.mustPut(symmetricEnrollment(id, key1))
	}
	reg := func(id string) DeviceAnswer {
		a, err := e.svc.Device(t.Context(), DeviceCall{Op: OpRegister, IDScope: testScope, RegistrationID: id, SAS: deviceToken(e.clk, id, key1)})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	reg("d0")
	if a := reg("d1"); a.Status != http.StatusTooManyRequests || a.RetryAfter != 10*time.Second {
		t.Fatalf("d1 at 6/min: %d %v", a.Status, a.RetryAfter)
	}
	// Scale up to 60/min: the next free slot (20 s) stays, the one after
	// it is 1 s later instead of 10.
	if err := e.svc.SetQuota(Quota{Limit: 60, Window: time.Minute, Burst: -1}); err != nil {
		t.Fatal(err)
	}
	if a := reg("d2"); a.Status != http.StatusTooManyRequests || a.RetryAfter != 20*time.Second {
		t.Fatalf("d2 at 60/min: %d %v", a.Status, a.RetryAfter)
	}
	if a := reg("d3"); a.Status != http.StatusTooManyRequests || a.RetryAfter != 21*time.Second {
		t.Fatalf("d3 at 60/min: %d %v", a.Status, a.RetryAfter)
	}
	e.clk.Advance(10 * time.Second)
	if a := reg("d1"); a.Status != http.StatusAccepted {
		t.Fatalf("d1 at its slot: %d", a.Status)
	}
	// No limit: everyone in.
	if err := e.svc.SetQuota(Quota{Window: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if a := reg("d0"); a.Status != http.StatusAccepted {
		t.Fatalf("d0 without a limit: %d", a.Status)
	}
	if err := e.svc.SetQuota(Quota{Limit: 5, Window: time.Hour}); err == nil {
		t.Error("a window change was accepted")
	}
	if err := e.svc.SetQuota(Quota{Limit: -1}); err == nil {
		t.Error("a negative limit was accepted")
	}
}

// Operations expire after opRetention although sweeps run only once per
// opSweepEvery.
func TestOperationsExpire(t *testing.T) {
	e := newEnv(t, nil)
	e.mustPut(symmetricEnrollment("d0", key1))
	e.mustPut(symmetricEnrollment("d1", key1))
	first := e.register("d0", deviceToken(e.clk, "d0", key1), "")
	var op RegistrationOperationStatus
	first.decode(t, &op)
	e.clk.Advance(opRetention + opSweepEvery + time.Second)
	e.register("d1", deviceToken(e.clk, "d1", key1), "")
	if r := e.poll("d0", deviceToken(e.clk, "d0", key1), op.OperationID); r.status != http.StatusNotFound {
		t.Errorf("poll of an expired operation: %d, want 404", r.status)
	}
}

// BenchmarkRegisterStorm registers b.N devices in one virtual instant
// through the in-process API: with a sweep of all operations on every
// registration it was quadratic in b.N.
func BenchmarkRegisterStorm(b *testing.B) {
	svc, err := New(Config{IDScopes: []string{testScope}, Hubs: newFakeHubs(hubA), Now: newClock().Now})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	g := EnrollmentGroup{EnrollmentGroupID: "g", Attestation: &AttestationMechanism{Type: AttestationSymmetricKey, SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: key1, SecondaryKey: key2}}}
	if _, err := svc.PutEnrollmentGroup(g); err != nil {
		b.Fatal(err)
	}
	clk := newClock()
	for i := range b.N {
		id := "dev-" + strconv.Itoa(i)
		dk, _ := DeriveGroupKey(key1, id)
		a, err := svc.Device(b.Context(), DeviceCall{Op: OpRegister, IDScope: testScope, RegistrationID: id, SAS: deviceToken(clk, id, dk)})
		if err != nil || a.Status != http.StatusAccepted {
			b.Fatalf("%s: %v %d", id, err, a.Status)
		}
	}
}
