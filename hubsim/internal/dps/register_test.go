package dps

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/ident"
)

func TestRegisterIndividualSymmetricKey(t *testing.T) {
	e := newEnv(t, nil)
	en := symmetricEnrollment("dev1", key1)
	en.DeviceID = "device-one"
	en.IoTHubs = []string{hubB}
	en.AllocationPolicy = AllocationStatic
	en.InitialTwin = &InitialTwin{Tags: map[string]any{"site": "lab"}, Properties: &InitialTwinProperties{Desired: map[string]any{"mode": "on", "$version": 3}}}
	e.mustPut(en)

	tok := deviceToken(e.clk, "dev1", key1)
	r := e.register("dev1", tok, `{"registrationId":"dev1"}`)
	if r.status != http.StatusAccepted {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want 1", got)
	}
	if ct := r.header.Get("Content-Type"); !contains(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	var st RegistrationOperationStatus
	r.decode(t, &st)
	if st.Status != StatusAssigning || st.OperationID == "" || st.RegistrationState != nil {
		t.Fatalf("register answer %+v", st)
	}
	p := e.poll("dev1", tok, st.OperationID)
	if p.status != http.StatusOK {
		t.Fatalf("poll: %d %s", p.status, p.body)
	}
	var done RegistrationOperationStatus
	p.decode(t, &done)
	rs := done.RegistrationState
	if done.Status != StatusAssigned || rs == nil || rs.AssignedHub != hubB || rs.DeviceID != "device-one" ||
		rs.Substatus != SubstatusInitialAssignment || rs.Status != StatusAssigned || rs.SymmetricKey == nil || rs.RegistrationID != "dev1" {
		t.Fatalf("terminal answer %s", p.body)
	}
	d, ok := e.hubs.device(hubB, "device-one")
	if !ok || d.Auth.Type != ident.AuthSAS || d.Auth.PrimaryKey != key1 || d.Auth.SecondaryKey != key2 {
		t.Fatalf("hub device %+v %v", d, ok)
	}
	tw := e.hubs.twin(hubB, "device-one")
	if tw.Tags["site"] != "lab" || tw.Desired["mode"] != "on" || tw.Desired["$version"] != nil {
		t.Errorf("initial twin %+v", tw)
	}

	// The C/C# token form (URL-encoded sr) signed with the secondary key works too.
	enc := signSAS(testScope+"/registrations/dev1", key2, "registration", e.clk.Now().Add(time.Hour), true)
	if r := e.lookup("dev1", enc); r.status != http.StatusOK {
		t.Fatalf("lookup with encoded sr: %d %s", r.status, r.body)
	} else {
		var res DeviceRegistrationResult
		r.decode(t, &res)
		if res.AssignedHub != hubB || res.DeviceID != "device-one" || res.Status != StatusAssigned {
			t.Errorf("lookup %s", r.body)
		}
	}
	// The service sees the registration state on the enrollment and by itself.
	got, _ := e.svc.GetEnrollment("dev1")
	if got.RegistrationState == nil || got.RegistrationState.AssignedHub != hubB {
		t.Errorf("enrollment registrationState %+v", got.RegistrationState)
	}
}

func TestRegisterGroupDerivedKey(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.svc.PutEnrollmentGroup(EnrollmentGroup{
		EnrollmentGroupID: "fleet",
		Attestation:       &AttestationMechanism{Type: AttestationSymmetricKey, SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: key1, SecondaryKey: key2}},
	}); err != nil {
		t.Fatal(err)
	}
	dk, err := DeriveGroupKey(key1, "gw-0042")
	if err != nil {
		t.Fatal(err)
	}
	done := e.provision("gw-0042", dk)
	rs := done.RegistrationState
	if done.Status != StatusAssigned || rs.SymmetricKey == nil || rs.SymmetricKey.EnrollmentGroupID != "fleet" || rs.DeviceID != "gw-0042" {
		t.Fatalf("group registration %+v", rs)
	}
	d, ok := e.hubs.device(rs.AssignedHub, "gw-0042")
	if !ok || d.Auth.PrimaryKey != dk {
		t.Errorf("hub device should carry the derived key, got %+v", d)
	}
	// The group key itself is not a device key.
	if r := e.register("gw-0042", deviceToken(e.clk, "gw-0042", key1), ""); r.status != http.StatusUnauthorized {
		t.Errorf("group key as device key: %d", r.status)
	}
	if st := e.svc.RegistrationStates("fleet"); len(st) != 1 || st[0].RegistrationID != "gw-0042" {
		t.Errorf("RegistrationStates(fleet) = %+v", st)
	}
}

func TestUnauthorizedShapes(t *testing.T) {
	e := newEnv(t, nil)
	e.mustPut(symmetricEnrollment("dev1", key1))
	otherKey := "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMTIzNDU2Nzg5MA=="
	tests := []struct {
		name  string
		regID string
		token string
	}{
		{"wrong key", "dev1", deviceToken(e.clk, "dev1", otherKey)},
		{"expired", "dev1", signSAS(testScope+"/registrations/dev1", key1, "registration", e.clk.Now().Add(-time.Minute), false)},
		{"other resource", "dev1", signSAS(testScope+"/registrations/dev2", key1, "registration", e.clk.Now().Add(time.Hour), false)},
		{"wrong key name", "dev1", signSAS(testScope+"/registrations/dev1", key1, "device", e.clk.Now().Add(time.Hour), false)},
		{"not a token", "dev1", "Bearer abc"},
		{"no token", "dev1", ""},
		{"unknown device", "ghost", deviceToken(e.clk, "ghost", key1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.register(tc.regID, tc.token, "")
			if r.status != http.StatusUnauthorized {
				t.Fatalf("status %d %s", r.status, r.body)
			}
			if r.header.Get("x-ms-error-code") != "401002" {
				t.Errorf("x-ms-error-code = %q", r.header.Get("x-ms-error-code"))
			}
			var ed ErrorDetails
			r.decode(t, &ed)
			if ed.ErrorCode != 401002 || ed.TrackingID == "" || ed.Message == "" || ed.TimestampUTC.IsZero() {
				t.Errorf("error body %s", r.body)
			}
		})
	}
}

func TestRegisterBodies(t *testing.T) {
	e := newEnv(t, nil)
	e.mustPut(symmetricEnrollment("dev1", key1))
	tok := deviceToken(e.clk, "dev1", key1)
	tests := []struct {
		body string
		want int
	}{
		{"", http.StatusAccepted},
		{" ", http.StatusAccepted},
		{"{}", http.StatusAccepted},
		{"null", http.StatusAccepted},
		{`{"payload":{"model":"x1"}}`, http.StatusAccepted},
		{`{"registrationId":"DEV1"}`, http.StatusAccepted}, // case-insensitive
		{`{"registrationId":"dev2"}`, http.StatusBadRequest},
		{`{not json`, http.StatusBadRequest},
	}
	for _, tc := range tests {
		if r := e.register("dev1", tok, tc.body); r.status != tc.want {
			t.Errorf("body %q: status %d, want %d (%s)", tc.body, r.status, tc.want, r.body)
		}
	}
}

func TestDisabledEnrollment(t *testing.T) {
	e := newEnv(t, nil)
	en := symmetricEnrollment("dev1", key1)
	en.ProvisioningStatus = ProvisioningDisabled
	e.mustPut(en)
	done := e.provision("dev1", key1)
	if done.Status != StatusDisabled || done.RegistrationState == nil || done.RegistrationState.Status != StatusDisabled || done.RegistrationState.AssignedHub != "" {
		t.Fatalf("disabled: %+v", done)
	}
	for _, h := range []string{hubA, hubB, hubC} {
		if _, ok := e.hubs.device(h, "dev1"); ok {
			t.Errorf("disabled device created on %s", h)
		}
	}
}

func TestAssignDelayAndSlowAssign(t *testing.T) {
	slow := map[string]time.Duration{"slow": 10 * time.Second}
	e := newEnv(t, func(c *Config) {
		c.AssignDelay = 3 * time.Second
		c.Faults = &Faults{SlowAssign: func(id string) time.Duration { return slow[id] }}
	})
	for _, id := range []string{"fast", "slow"} {
		e.mustPut(symmetricEnrollment(id, key1))
	}
	tests := []struct {
		id        string
		wantRetry string
		stillAt   time.Duration
		readyAt   time.Duration
	}{
		{"fast", "3", 2 * time.Second, 3 * time.Second},
		{"slow", "13", 12 * time.Second, 13 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			start := e.clk.Now()
			tok := deviceToken(e.clk, tc.id, key1)
			r := e.register(tc.id, tok, "")
			if r.header.Get("Retry-After") != tc.wantRetry {
				t.Errorf("Retry-After %q, want %q", r.header.Get("Retry-After"), tc.wantRetry)
			}
			var st RegistrationOperationStatus
			r.decode(t, &st)
			e.clk.Advance(start.Add(tc.stillAt).Sub(e.clk.Now()))
			if p := e.poll(tc.id, tok, st.OperationID); p.status != http.StatusAccepted || p.header.Get("Retry-After") == "" {
				t.Fatalf("before ready: %d %v", p.status, p.header)
			}
			e.clk.Advance(start.Add(tc.readyAt).Sub(e.clk.Now()))
			if p := e.poll(tc.id, tok, st.OperationID); p.status != http.StatusOK {
				t.Fatalf("when ready: %d %s", p.status, p.body)
			}
		})
	}
	if s := e.svc.Stats(); s.EarlyPolls != 2 {
		t.Errorf("EarlyPolls = %d, want 2 (one early poll per device)", s.EarlyPolls)
	}
}

func TestPollUnknownOperation(t *testing.T) {
	e := newEnv(t, nil)
	e.mustPut(symmetricEnrollment("dev1", key1))
	e.mustPut(symmetricEnrollment("dev2", key1))
	st := e.provision("dev1", key1)
	// Another device cannot read dev1's operation.
	if r := e.poll("dev2", deviceToken(e.clk, "dev2", key1), st.OperationID); r.status != http.StatusNotFound {
		t.Errorf("foreign operation: %d", r.status)
	}
	if r := e.poll("dev1", deviceToken(e.clk, "dev1", key1), "4.nope"); r.status != http.StatusNotFound {
		t.Errorf("unknown operation: %d", r.status)
	}
}

func TestLookup(t *testing.T) {
	e := newEnv(t, nil)
	e.mustPut(symmetricEnrollment("dev1", key1))
	tok := deviceToken(e.clk, "dev1", key1)
	if r := e.lookup("dev1", tok); r.status != http.StatusNotFound {
		t.Fatalf("lookup before registering: %d %s", r.status, r.body)
	}
	done := e.provision("dev1", key1)
	r := e.lookup("dev1", tok)
	if r.status != http.StatusOK {
		t.Fatalf("lookup: %d %s", r.status, r.body)
	}
	var res DeviceRegistrationResult
	r.decode(t, &res)
	if res.AssignedHub != done.RegistrationState.AssignedHub || res.ETag != done.RegistrationState.ETag {
		t.Errorf("lookup %+v vs register %+v", res, done.RegistrationState)
	}
	if s := e.svc.Stats(); s.Lookups != 2 || s.Registrations != 1 || s.Admitted != 3 {
		t.Errorf("stats %+v", s)
	}
}

func TestUnknownScopeAndRoutes(t *testing.T) {
	e := newEnv(t, nil)
	r := do(t, nil, http.MethodPut, e.dev.URL+"/0neOTHER/registrations/dev1/register", map[string]string{"Authorization": deviceToken(e.clk, "dev1", key1)}, nil)
	if r.status != http.StatusNotFound {
		t.Errorf("unknown scope: %d", r.status)
	}
	r = do(t, nil, http.MethodDelete, e.dev.URL+"/"+testScope+"/registrations/dev1/register", nil, nil)
	if r.status != http.StatusNotFound {
		t.Errorf("bad route: %d", r.status)
	}
	if u := e.svc.Unhandled(); len(u) != 1 || u[0] != "DELETE /"+testScope+"/registrations/dev1/register" {
		t.Errorf("Unhandled = %q", u)
	}
	e.svc.mu.Lock()
	e.svc.unhandled = nil // expected; keep the cleanup check quiet
	e.svc.mu.Unlock()
}

func TestX509(t *testing.T) {
	e := newEnv(t, nil)
	notAfter := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	root := makeCert(t, "fleet root", nil, true, notAfter)
	inter := makeCert(t, "fleet intermediate", root, true, notAfter)
	groupLeaf := makeCert(t, "gw-x1", inter, false, notAfter)
	solo := makeCert(t, "solo-1", nil, false, notAfter)
	stranger := makeCert(t, "solo-1", nil, false, notAfter) // same CN, other key
	expired := makeCert(t, "old-1", nil, false, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))

	e.mustPut(IndividualEnrollment{RegistrationID: "solo-1", Attestation: &AttestationMechanism{Type: AttestationX509,
		X509: &X509Attestation{ClientCertificates: &X509Certificates{Primary: &X509CertificateWithInfo{Certificate: solo.pem}}}}})
	e.mustPut(IndividualEnrollment{RegistrationID: "old-1", Attestation: &AttestationMechanism{Type: AttestationX509,
		X509: &X509Attestation{ClientCertificates: &X509Certificates{Primary: &X509CertificateWithInfo{Certificate: expired.pem}}}}})
	if _, err := e.svc.PutEnrollmentGroup(EnrollmentGroup{EnrollmentGroupID: "x509fleet", Attestation: &AttestationMechanism{Type: AttestationX509,
		X509: &X509Attestation{SigningCertificates: &X509Certificates{Primary: &X509CertificateWithInfo{Certificate: root.pem}}}}}); err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewUnstartedServer(e.svc.HTTP())
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	defer srv.Close()
	client := func(c tls.Certificate) *http.Client {
		tr := srv.Client().Transport.(*http.Transport).Clone()
		tr.TLSClientConfig.Certificates = []tls.Certificate{c}
		return &http.Client{Transport: tr}
	}
	tests := []struct {
		name      string
		regID     string
		cert      tls.Certificate
		want      int
		wantGroup string
		wantAuth  string
	}{
		{"individual", "solo-1", solo.tlsCert(), http.StatusOK, "", ident.AuthSelfSigned},
		{"individual wrong key", "solo-1", stranger.tlsCert(), http.StatusUnauthorized, "", ""},
		{"expired", "old-1", expired.tlsCert(), http.StatusUnauthorized, "", ""},
		{"group chain", "gw-x1", groupLeaf.tlsCert(inter), http.StatusOK, "x509fleet", ident.AuthCertificateAuthority},
		{"group missing intermediate", "gw-x1", groupLeaf.tlsCert(), http.StatusUnauthorized, "", ""},
		{"CN is not the registration id", "gw-x2", groupLeaf.tlsCert(inter), http.StatusUnauthorized, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := client(tc.cert)
			defer c.CloseIdleConnections()
			base := srv.URL + "/" + testScope + "/registrations/" + tc.regID
			r := do(t, c, http.MethodPut, base+"/register?api-version=2019-03-31", nil, []byte(`{"registrationId":"`+tc.regID+`"}`))
			if tc.want != http.StatusOK {
				if r.status != tc.want {
					t.Fatalf("register: %d %s", r.status, r.body)
				}
				return
			}
			var st RegistrationOperationStatus
			r.decode(t, &st)
			p := do(t, c, http.MethodGet, base+"/operations/"+st.OperationID, nil, nil)
			var done RegistrationOperationStatus
			p.decode(t, &done)
			rs := done.RegistrationState
			if p.status != http.StatusOK || rs == nil || rs.X509 == nil || rs.X509.EnrollmentGroupID != tc.wantGroup || rs.X509.CertificateInfo == nil {
				t.Fatalf("poll: %d %s", p.status, p.body)
			}
			d, _ := e.hubs.device(rs.AssignedHub, tc.regID)
			if d.Auth.Type != tc.wantAuth {
				t.Errorf("hub auth %+v, want %s", d.Auth, tc.wantAuth)
			}
		})
	}
	// The service shows certificate info it computed.
	en, _ := e.svc.GetEnrollment("solo-1")
	info := en.Attestation.X509.ClientCertificates.Primary.Info
	if info == nil || info.SHA256Thumbprint != thumbprintSHA256(solo.cert) || info.SubjectName != "CN=solo-1" {
		t.Errorf("certificate info %+v", info)
	}
	_ = x509.ErrUnsupportedAlgorithm
}

func TestCustomPayloadReturned(t *testing.T) {
	var got AllocationRequest
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"iotHubHostName":"` + hubC + `","payload":{"certUrl":"x"}}`))
	}))
	defer hook.Close()
	e := newEnv(t, func(c *Config) { c.HTTPClient = hook.Client() })
	en := symmetricEnrollment("dev1", key1)
	en.AllocationPolicy = AllocationCustom
	en.CustomAllocationDefinition = &CustomAllocationDefinition{WebhookURL: hook.URL + "/alloc?code=s3cret", APIVersion: "2021-10-01"}
	e.mustPut(en)
	tok := deviceToken(e.clk, "dev1", key1)
	r := e.register("dev1", tok, `{"registrationId":"dev1","payload":{"model":"x1"}}`)
	var st RegistrationOperationStatus
	r.decode(t, &st)
	var done RegistrationOperationStatus
	e.poll("dev1", tok, st.OperationID).decode(t, &done)
	if done.RegistrationState.AssignedHub != hubC || string(done.RegistrationState.Payload) != `{"certUrl":"x"}` {
		t.Fatalf("custom result %+v", done.RegistrationState)
	}
	if string(got.DeviceRuntimeContext.Payload) != `{"model":"x1"}` {
		t.Errorf("webhook saw payload %s", got.DeviceRuntimeContext.Payload)
	}
	if !reflect.DeepEqual(got.LinkedHubs, []string{hubA, hubB, hubC}) {
		t.Errorf("linkedHubs %v", got.LinkedHubs)
	}
	_ = strconv.Itoa
}
