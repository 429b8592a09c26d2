package dps

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-iot/porthole/hubsim/internal/ident"
	"github.com/porthole-iot/porthole/hubsim/internal/sas"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testScope   = "0ne0000TEST"
	testService = "dps-test.azure-devices-provisioning.net"
	hubA        = "hub-a.azure-devices.net"
	hubB        = "hub-b.azure-devices.net"
	hubC        = "hub-c.azure-devices.net"
	ownerKey    = "b3duZXIta2V5LW93bmVyLWtleS1vd25lci1rZXktMTIzNDU2Nzg5MA=="
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeHubs is an in-memory ident.Hubs.
type fakeHubs struct {
	mu      sync.Mutex
	names   []string
	devices map[string]map[string]ident.Device
	twins   map[string]map[string]ident.Twin
	removed []string // "hub/device"
	failOn  map[string]bool
}

func newFakeHubs(names ...string) *fakeHubs {
	f := &fakeHubs{names: names, devices: map[string]map[string]ident.Device{}, twins: map[string]map[string]ident.Twin{}, failOn: map[string]bool{}}
	for _, n := range names {
		f.devices[n] = map[string]ident.Device{}
		f.twins[n] = map[string]ident.Twin{}
	}
	return f
}

func (f *fakeHubs) HostNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.names...)
}

func (f *fakeHubs) UpsertDevice(hub string, d ident.Device) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.devices[hub] == nil || f.failOn[hub] {
		return fmt.Errorf("no such hub %q", hub)
	}
	if _, ok := f.devices[hub][d.DeviceID]; !ok {
		f.twins[hub][d.DeviceID] = ident.Twin{Tags: map[string]any{}, Desired: map[string]any{}, Reported: map[string]any{}}
	}
	f.devices[hub][d.DeviceID] = d
	return nil
}

func (f *fakeHubs) RemoveDevice(hub, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.devices[hub], id)
	delete(f.twins[hub], id)
	f.removed = append(f.removed, hub+"/"+id)
	return nil
}

func (f *fakeHubs) ExportTwin(hub, id string) (ident.Twin, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.twins[hub][id]
	return t, ok
}

func (f *fakeHubs) ImportTwin(hub, id string, t ident.Twin) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.devices[hub][id]; !ok {
		return fmt.Errorf("no device %q on %q", id, hub)
	}
	f.twins[hub][id] = t
	return nil
}

func (f *fakeHubs) device(hub, id string) (ident.Device, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.devices[hub][id]
	return d, ok
}

func (f *fakeHubs) twin(hub, id string) ident.Twin {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.twins[hub][id]
}

func (f *fakeHubs) setReported(hub, id string, k string, v any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.twins[hub][id]
	if t.Reported == nil {
		t.Reported = map[string]any{}
	}
	t.Reported[k] = v
	f.twins[hub][id] = t
}

// signSAS builds a SAS token the way the SDKs do: sig over "<sr as sent>\n<se>".
// encode selects the C/C# form (sr URL-encoded) over Node's (raw).
func signSAS(resource, keyB64, keyName string, expiry time.Time, encode bool) string {
	sr := resource
	if encode {
		sr = url.QueryEscape(resource)
	}
	se := strconv.FormatInt(expiry.Unix(), 10)
	k, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil {
		panic(err)
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(sr + "\n" + se))
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(m.Sum(nil)))
	tok := "SharedAccessSignature sr=" + sr + "&sig=" + sig + "&se=" + se
	if keyName != "" {
		tok += "&skn=" + keyName
	}
	return tok
}

func deviceToken(c *clock, regID, key string) string {
	return signSAS(testScope+"/registrations/"+regID, key, "registration", c.Now().Add(time.Hour), false)
}

func serviceToken(c *clock) string {
	return signSAS(testService, ownerKey, "provisioningserviceowner", c.Now().Add(time.Hour), false)
}

type env struct {
	t    *testing.T
	clk  *clock
	hubs *fakeHubs
	svc  *Service
	dev  *httptest.Server
	api  *httptest.Server
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	clk := newClock()
	hubs := newFakeHubs(hubA, hubB, hubC)
	cfg := Config{
		IDScopes:    []string{testScope},
		ServiceHost: testService,
		Policies:    []sas.Policy{{Name: "provisioningserviceowner", PrimaryKey: ownerKey, Rights: []string{RightServiceConfig, RightEnrollmentRead, RightEnrollmentWrite, RightRegistrationStatusRead, RightRegistrationStatusWrite}}},
		Hubs:        hubs,
		Now:         clk.Now,
		RetryAfter:  time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, clk: clk, hubs: hubs, svc: svc}
	e.dev = httptest.NewServer(svc.HTTP())
	e.api = httptest.NewServer(svc.HTTP())
	t.Cleanup(func() {
		e.dev.Close()
		e.api.Close()
		_ = svc.Close()
		if u := svc.Unhandled(); len(u) > 0 {
			t.Errorf("unhandled requests: %q", u)
		}
	})
	return e
}

type httpResult struct {
	status int
	header http.Header
	body   []byte
}

func (r httpResult) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

func do(t *testing.T, client *http.Client, method, u string, hdr map[string]string, body []byte) httpResult {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpResult{status: resp.StatusCode, header: resp.Header, body: b}
}

func (e *env) register(regID, token string, body string) httpResult {
	e.t.Helper()
	return e.registerAPI(regID, token, body, "2021-06-01")
}

func (e *env) registerAPI(regID, token, body, apiVersion string) httpResult {
	e.t.Helper()
	return do(e.t, nil, http.MethodPut, e.dev.URL+"/"+testScope+"/registrations/"+regID+"/register?api-version="+apiVersion,
		map[string]string{"Authorization": token, "Content-Type": "application/json"}, []byte(body))
}

func (e *env) poll(regID, token, op string) httpResult {
	e.t.Helper()
	return do(e.t, nil, http.MethodGet, e.dev.URL+"/"+testScope+"/registrations/"+regID+"/operations/"+op+"?api-version=2021-06-01",
		map[string]string{"Authorization": token}, nil)
}

func (e *env) lookup(regID, token string) httpResult {
	e.t.Helper()
	return do(e.t, nil, http.MethodPost, e.dev.URL+"/"+testScope+"/registrations/"+regID+"?api-version=2021-06-01",
		map[string]string{"Authorization": token, "Content-Type": "application/json"}, []byte(`{"registrationId":"`+regID+`"}`))
}

// provision registers and polls until the operation is terminal (advancing
// the clock by each retry-after), returning the final status.
func (e *env) provision(regID, key string) RegistrationOperationStatus {
	e.t.Helper()
	return e.provisionAPI(regID, key, "2021-06-01")
}

func (e *env) provisionAPI(regID, key, apiVersion string) RegistrationOperationStatus {
	e.t.Helper()
	tok := deviceToken(e.clk, regID, key)
	r := e.registerAPI(regID, tok, `{"registrationId":"`+regID+`"}`, apiVersion)
	if r.status != http.StatusAccepted {
		e.t.Fatalf("register %s: %d %s", regID, r.status, r.body)
	}
	var st RegistrationOperationStatus
	r.decode(e.t, &st)
	for i := 0; i < 20; i++ {
		ra, _ := strconv.Atoi(r.header.Get("Retry-After"))
		e.clk.Advance(time.Duration(ra) * time.Second)
		r = e.poll(regID, tok, st.OperationID)
		if r.status == http.StatusOK {
			var done RegistrationOperationStatus
			r.decode(e.t, &done)
			return done
		}
		if r.status != http.StatusAccepted {
			e.t.Fatalf("poll %s: %d %s", regID, r.status, r.body)
		}
	}
	e.t.Fatalf("poll %s: never terminal", regID)
	return st
}

func (e *env) service(method, path string, hdr map[string]string, body any) httpResult {
	e.t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			e.t.Fatal(err)
		}
	}
	h := map[string]string{"Authorization": serviceToken(e.clk), "Content-Type": "application/json; charset=utf-8"}
	for k, v := range hdr {
		h[k] = v
	}
	return do(e.t, nil, method, e.api.URL+path, h, b)
}

func symmetricEnrollment(regID, key string) IndividualEnrollment {
	return IndividualEnrollment{
		RegistrationID: regID,
		Attestation:    &AttestationMechanism{Type: AttestationSymmetricKey, SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: key, SecondaryKey: key2}},
	}
}

const (
	key1 = "a2V5LW9uZS1rZXktb25lLWtleS1vbmUta2V5LW9uZS0xMjM0NTY3OA=="
	key2 = "a2V5LXR3by1rZXktdHdvLWtleS10d28ta2V5LXR3by0xMjM0NTY3OA=="
)

func (e *env) mustPut(en IndividualEnrollment) IndividualEnrollment {
	e.t.Helper()
	out, err := e.svc.PutEnrollment(en)
	if err != nil {
		e.t.Fatalf("PutEnrollment: %v", err)
	}
	return out
}

// --- certificates ---

type testCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  string
}

func makeCert(t *testing.T, cn string, parent *testCert, isCA bool, notAfter time.Time) *testCert {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	signer, signerCert := k, tmpl
	if parent != nil {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &k.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: c, key: k, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

func (c *testCert) tlsCert(chain ...*testCert) tls.Certificate {
	tc := tls.Certificate{Certificate: [][]byte{c.cert.Raw}, PrivateKey: c.key, Leaf: c.cert}
	for _, p := range chain {
		tc.Certificate = append(tc.Certificate, p.cert.Raw)
	}
	return tc
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func policyOf2(name, key string, rights ...string) sas.Policy {
	return sas.Policy{Name: name, PrimaryKey: key, Rights: rights}
}
