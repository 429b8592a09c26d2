package dps

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// Authorization order (issue 11, finding 1). Azure DPS looks for the
// device's individual enrollment first and only searches enrollment groups
// when there is none; a disabled individual enrollment keeps the device out
// even when an enabled group would accept it ("Disallow specific devices in
// an enrollment group", MicrosoftDocs/azure-docs
// articles/iot-dps/how-to-revoke-device-access-portal.md). The table below
// is every combination of individual enrollment × group × presented
// credential, run once with symmetric keys and once with X.509.

type enrollState int

const (
	absent enrollState = iota
	enabled
	disabled
)

func (s enrollState) String() string { return [...]string{"absent", "enabled", "disabled"}[s] }

type credKind int

const (
	credIndividual credKind = iota // the individual enrollment's key / self-signed certificate
	credGroup                      // the group-derived key / a leaf signed by the group's CA
	credWrong                      // neither
)

func (c credKind) String() string {
	return [...]string{"individual-cred", "group-cred", "wrong-cred"}[c]
}

type authOutcome string

const (
	viaIndividual authOutcome = "assigned via individual enrollment"
	viaGroup      authOutcome = "assigned via group"
	blocked       authOutcome = "status disabled"
	refused       authOutcome = "401"
)

var authOrderTable = []struct {
	ind, grp enrollState
	cred     credKind
	want     authOutcome
}{
	// No individual enrollment: the group decides.
	{absent, absent, credIndividual, refused},
	{absent, absent, credGroup, refused},
	{absent, absent, credWrong, refused},
	{absent, enabled, credIndividual, refused},
	{absent, enabled, credGroup, viaGroup},
	{absent, enabled, credWrong, refused},
	{absent, disabled, credIndividual, refused},
	{absent, disabled, credGroup, blocked},
	{absent, disabled, credWrong, refused},
	// An enabled individual enrollment: only its own credential counts.
	{enabled, absent, credIndividual, viaIndividual},
	{enabled, absent, credGroup, refused},
	{enabled, absent, credWrong, refused},
	{enabled, enabled, credIndividual, viaIndividual},
	{enabled, enabled, credGroup, refused}, // the takeover of finding 1
	{enabled, enabled, credWrong, refused},
	{enabled, disabled, credIndividual, viaIndividual},
	{enabled, disabled, credGroup, refused},
	{enabled, disabled, credWrong, refused},
	// A disabled individual enrollment keeps the device out, group or not.
	{disabled, absent, credIndividual, blocked},
	{disabled, absent, credGroup, refused},
	{disabled, absent, credWrong, refused},
	{disabled, enabled, credIndividual, blocked},
	{disabled, enabled, credGroup, refused}, // the disabled-device bypass of finding 1
	{disabled, enabled, credWrong, refused},
	{disabled, disabled, credIndividual, blocked},
	{disabled, disabled, credGroup, refused},
	{disabled, disabled, credWrong, refused},
}

func provisioningStatusOf(s enrollState) string {
	if s == disabled {
		return ProvisioningDisabled
	}
	return ProvisioningEnabled
}

func TestAuthorizationOrderSymmetricKey(t *testing.T) {
	const regID = "dev-a"
	const groupKey = "Z3JvdXAta2V5LWdyb3VwLWtleS1ncm91cC1rZXktMTIzNDU2Nzg5MA=="
	const wrongKey = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktMTIzNDU2Nzg5MA=="
	derived, err := DeriveGroupKey(groupKey, regID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range authOrderTable {
		t.Run(fmt.Sprintf("individual-%v/group-%v/%v", tc.ind, tc.grp, tc.cred), func(t *testing.T) {
			e := newEnv(t, nil)
			if tc.ind != absent {
				en := symmetricEnrollment(regID, key1)
				en.ProvisioningStatus = provisioningStatusOf(tc.ind)
				e.mustPut(en)
			}
			if tc.grp != absent {
				if _, err := e.svc.PutEnrollmentGroup(EnrollmentGroup{
					EnrollmentGroupID:  "fleet",
					ProvisioningStatus: provisioningStatusOf(tc.grp),
					Attestation:        &AttestationMechanism{Type: AttestationSymmetricKey, SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: groupKey}},
				}); err != nil {
					t.Fatal(err)
				}
			}
			key := map[credKind]string{credIndividual: key1, credGroup: derived, credWrong: wrongKey}[tc.cred]
			tok := deviceToken(e.clk, regID, key)
			got := authAttempt(t, e.clk, func(method, path string, body []byte) httpResult {
				return do(t, nil, method, e.dev.URL+path, map[string]string{"Authorization": tok, "Content-Type": "application/json"}, body)
			}, regID)
			if got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
			// The MQTT transport authenticates the same way.
			_, err := e.svc.authenticate(testScope, regID, deviceCreds{SAS: tok}, e.clk.Now())
			if (err != nil) != (tc.want == refused) {
				t.Errorf("authenticate err = %v, want refused=%v", err, tc.want == refused)
			}
		})
	}
}

func TestAuthorizationOrderX509(t *testing.T) {
	const regID = "dev-x"
	notAfter := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	root := makeCert(t, "fleet root", nil, true, notAfter)
	groupLeaf := makeCert(t, regID, root, false, notAfter)
	own := makeCert(t, regID, nil, false, notAfter)
	wrong := makeCert(t, regID, nil, false, notAfter) // same CN, neither enrolled nor CA-signed
	for _, tc := range authOrderTable {
		t.Run(fmt.Sprintf("individual-%v/group-%v/%v", tc.ind, tc.grp, tc.cred), func(t *testing.T) {
			e := newEnv(t, nil)
			if tc.ind != absent {
				e.mustPut(IndividualEnrollment{RegistrationID: regID, ProvisioningStatus: provisioningStatusOf(tc.ind),
					Attestation: &AttestationMechanism{Type: AttestationX509,
						X509: &X509Attestation{ClientCertificates: &X509Certificates{Primary: &X509CertificateWithInfo{Certificate: own.pem}}}}})
			}
			if tc.grp != absent {
				if _, err := e.svc.PutEnrollmentGroup(EnrollmentGroup{EnrollmentGroupID: "fleet", ProvisioningStatus: provisioningStatusOf(tc.grp),
					Attestation: &AttestationMechanism{Type: AttestationX509,
						X509: &X509Attestation{SigningCertificates: &X509Certificates{Primary: &X509CertificateWithInfo{Certificate: root.pem}}}}}); err != nil {
					t.Fatal(err)
				}
			}
			cert := map[credKind]*testCert{credIndividual: own, credGroup: groupLeaf, credWrong: wrong}[tc.cred]
			c := x509Client(t, e, cert.tlsCert())
			got := authAttempt(t, e.clk, func(method, path string, body []byte) httpResult {
				return do(t, c.client, method, c.url+path, map[string]string{"Content-Type": "application/json"}, body)
			}, regID)
			if got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
			_, err := e.svc.authenticate(testScope, regID, deviceCreds{Certs: []*x509.Certificate{cert.cert}}, e.clk.Now())
			if (err != nil) != (tc.want == refused) {
				t.Errorf("authenticate err = %v, want refused=%v", err, tc.want == refused)
			}
		})
	}
}

// TestDisabledIndividualBlocksGroupCertificate is the documented way to take
// one device out of an X.509 group: a disabled individual enrollment holding
// the device's own (CA-signed) certificate.
func TestDisabledIndividualBlocksGroupCertificate(t *testing.T) {
	const regID = "dev-x"
	notAfter := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	root := makeCert(t, "fleet root", nil, true, notAfter)
	leaf := makeCert(t, regID, root, false, notAfter)
	e := newEnv(t, nil)
	if _, err := e.svc.PutEnrollmentGroup(EnrollmentGroup{EnrollmentGroupID: "fleet",
		Attestation: &AttestationMechanism{Type: AttestationX509,
			X509: &X509Attestation{SigningCertificates: &X509Certificates{Primary: &X509CertificateWithInfo{Certificate: root.pem}}}}}); err != nil {
		t.Fatal(err)
	}
	e.mustPut(IndividualEnrollment{RegistrationID: regID, ProvisioningStatus: ProvisioningDisabled,
		Attestation: &AttestationMechanism{Type: AttestationX509,
			X509: &X509Attestation{ClientCertificates: &X509Certificates{Primary: &X509CertificateWithInfo{Certificate: leaf.pem}}}}})
	c := x509Client(t, e, leaf.tlsCert())
	got := authAttempt(t, e.clk, func(method, path string, body []byte) httpResult {
		return do(t, c.client, method, c.url+path, map[string]string{"Content-Type": "application/json"}, body)
	}, regID)
	if got != blocked {
		t.Fatalf("got %s, want %s", got, blocked)
	}
}

type x509Conn struct {
	client *http.Client
	url    string
}

func x509Client(t *testing.T, e *env, cert tls.Certificate) x509Conn {
	t.Helper()
	srv := httptest.NewUnstartedServer(e.svc.HTTP())
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	c := &http.Client{Transport: tr}
	t.Cleanup(func() {
		c.CloseIdleConnections()
		srv.Close()
	})
	return x509Conn{client: c, url: srv.URL}
}

// authAttempt registers regID through send and polls to a terminal answer,
// returning what the device ended up with.
func authAttempt(t *testing.T, clk *clock, send func(method, path string, body []byte) httpResult, regID string) authOutcome {
	t.Helper()
	base := "/" + testScope + "/registrations/" + regID
	r := send(http.MethodPut, base+"/register?api-version=2021-06-01", []byte(`{"registrationId":"`+regID+`"}`))
	switch r.status {
	case http.StatusUnauthorized:
		return refused
	case http.StatusAccepted:
	default:
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	var st RegistrationOperationStatus
	r.decode(t, &st)
	for i := 0; i < 20; i++ {
		ra, _ := strconv.Atoi(r.header.Get("Retry-After"))
		clk.Advance(time.Duration(ra) * time.Second)
		r = send(http.MethodGet, base+"/operations/"+st.OperationID+"?api-version=2021-06-01", nil)
		if r.status == http.StatusAccepted {
			continue
		}
		if r.status != http.StatusOK {
			t.Fatalf("poll: %d %s", r.status, r.body)
		}
		var done RegistrationOperationStatus
		r.decode(t, &done)
		rs := done.RegistrationState
		switch {
		case done.Status == StatusDisabled:
			return blocked
		case done.Status != StatusAssigned || rs == nil:
			t.Fatalf("poll: %s", r.body)
		case rs.SymmetricKey != nil && rs.SymmetricKey.EnrollmentGroupID != "",
			rs.X509 != nil && rs.X509.EnrollmentGroupID != "":
			return viaGroup
		}
		return viaIndividual
	}
	t.Fatal("poll: never terminal")
	return ""
}
