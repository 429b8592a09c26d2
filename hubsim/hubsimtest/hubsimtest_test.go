package hubsimtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-iot/porthole/hubsim/internal/broker"
	"github.com/porthole-iot/porthole/hubsim/internal/server"
	"github.com/porthole-iot/porthole/hubsim/internal/simconfig"
	"github.com/porthole-iot/porthole/sdk/auth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitTimeout = 30 * time.Second

func TestHealthzByHostName(t *testing.T) {
	sim := New(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for _, url := range []string{
		"https://hub-eu.local/healthz", // port 443 maps to the sim's HTTPS port
		"https://global.dps.local:443/healthz",
		"https://127.0.0.1:" + strconv.Itoa(sim.Server.HTTPSPort()) + "/healthz",
	} {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := sim.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != `{"status":"ok"}` {
			t.Errorf("%s: %d %q", url, resp.StatusCode, body)
		}
	}
}

func TestEndpoints(t *testing.T) {
	sim := New(t)
	if sim.IDScope != simconfig.DefaultIDScope || sim.GlobalEndpoint != simconfig.DefaultGlobalEndpoint || sim.DPSHostName != simconfig.DefaultDPSHostName {
		t.Errorf("DPS endpoints %q %q %q", sim.IDScope, sim.GlobalEndpoint, sim.DPSHostName)
	}
	if strings.Join(sim.HubHostNames, ",") != "hub-eu.local,hub-us.local" {
		t.Errorf("hubs %v", sim.HubHostNames)
	}
	if !strings.HasPrefix(sim.HTTPSAddr, "127.0.0.1:") || !strings.HasPrefix(sim.MQTTAddr, "127.0.0.1:") {
		t.Errorf("addrs %s %s", sim.HTTPSAddr, sim.MQTTAddr)
	}
	pem, err := os.ReadFile(sim.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pem, sim.PKI.CAPEM()) {
		t.Error("CAFile content differs from the CA")
	}
	cs := sim.HubConnectionString("HUB-US.local")
	if !strings.HasPrefix(cs, "HostName=hub-us.local;SharedAccessKeyName=iothubowner;SharedAccessKey=") {
		t.Errorf("hub connection string %q", cs)
	}
	if cs != sim.Status.Hubs[1].ServiceConnectionString {
		t.Error("connection string differs from Status")
	}
	if scs := sim.HubPolicyConnectionString("hub-us.local", "service"); !strings.HasPrefix(scs, "HostName=hub-us.local;SharedAccessKeyName=service;SharedAccessKey=") {
		t.Errorf("service policy connection string %q", scs)
	}
	if dcs := sim.DPSConnectionString(); dcs != sim.Status.DPS.ServiceConnectionString || !strings.Contains(dcs, "provisioningserviceowner") {
		t.Errorf("DPS connection string %q", dcs)
	}
	// Device certificates.
	ca := sim.ClientCertificate("dev1")
	if _, err := ca.Leaf.Verify(x509.VerifyOptions{Roots: sim.CAPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("CA-signed device cert: %v", err)
	}
	self := sim.SelfSignedCertificate("dev2")
	if self.Leaf.Subject.CommonName != "dev2" || self.Leaf.Issuer.CommonName != "dev2" {
		t.Errorf("self-signed cert subject %v issuer %v", self.Leaf.Subject, self.Leaf.Issuer)
	}
}

func TestResolve(t *testing.T) {
	sim := New(t, WithConfig(func(c *simconfig.Config) {
		c.Listen = []string{"127.0.0.1", "127.0.0.2"}
		c.Hubs = append(c.Hubs, simconfig.Hub{Name: "ip-hub", HostName: "127.0.0.2"})
		c.ExtraNames = []string{"extra.example"}
	}))
	h, m := sim.Server.HTTPSPort(), sim.Server.MQTTPort()
	https1 := "127.0.0.1:" + strconv.Itoa(h)
	https2 := "127.0.0.2:" + strconv.Itoa(h)
	mqtt1 := "127.0.0.1:" + strconv.Itoa(m)
	mqtt2 := "127.0.0.2:" + strconv.Itoa(m)
	tests := []struct {
		addr, want string
		wantErr    bool
	}{
		{"hub-eu.local:443", https1, false},
		{"HUB-EU.local.:443", https1, false},
		{"hub-eu.local:8883", mqtt1, false},
		{"hub-us.local:" + strconv.Itoa(h), https1, false},
		{"global.dps.local:8883", mqtt1, false},
		{"dps.local:443", https1, false},
		{"extra.example:443", https1, false},
		{"localhost:443", https1, false},
		{"[::1]:8883", mqtt1, false},
		{"127.0.0.2:443", https2, false},
		{"127.0.0.2:8883", mqtt2, false},
		{"myhub.azure-devices.net:443", "", true},
		{"hub-eu.local:80", "", true},
		{"hub-eu.local", "", true},
	}
	for _, tt := range tests {
		got, err := sim.resolve(tt.addr)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("resolve(%q) = %q, %v; want %q, err %v", tt.addr, got, err, tt.want, tt.wantErr)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := sim.DialContext(ctx, "tcp", "global.azure-devices-provisioning.net:443"); err == nil || !strings.Contains(err.Error(), "not part of the sim") {
		t.Errorf("dial outside the sim: %v", err)
	}
}

// fakeTB records errors and cleanups so a test can check what hubsimtest
// reports at cleanup without failing itself.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}
func (f *fakeTB) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

// TestUnhandledFailsAtCleanup: whatever part of the sim notices a request
// it does not serve (the router, a hub, the DPS), the test fails at cleanup
// naming it, unless AllowUnhandled.
func TestUnhandledFailsAtCleanup(t *testing.T) {
	hubQuery := func(sim *Sim) *http.Request {
		cs, err := auth.ParseServiceConnectionString(sim.HubConnectionString("hub-eu.local"))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := auth.PolicyToken(cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", "https://hub-eu.local/devices/query?api-version=2021-04-12",
			strings.NewReader(`{"query":"SELECT * FROM devices.jobs"}`))
		req.Header.Set("Authorization", tok)
		req.Header.Set("Content-Type", "application/json")
		return req
	}
	get := func(url string) func(*Sim) *http.Request {
		return func(*Sim) *http.Request { req, _ := http.NewRequest("GET", url, nil); return req }
	}
	sends := []struct {
		name   string
		req    func(*Sim) *http.Request
		status int
		want   string // in Unhandled and in the cleanup error
	}{
		{"router", get("https://hub-eu.local/unknown/thing"), 404, "GET /unknown/thing"},
		{"hub route", get("https://hub-eu.local/devices/d1/nothing?api-version=2021-04-12"), 404, "hub hub-eu.local rest: GET /devices/d1/nothing"},
		{"hub query", hubQuery, 400, "hub hub-eu.local query: SELECT * FROM devices.jobs"},
		{"dps device route", get("https://global.dps.local/0ne00000001/registrations/r1/nothing"), 404, "dps: GET /0ne00000001/registrations/r1/nothing"},
		{"dps service route", get("https://global.dps.local/enrollments/e1/nothing"), 404, "dps: GET /enrollments/e1/nothing"},
	}
	for _, send := range sends {
		for _, allow := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/allow=%v", send.name, allow), func(t *testing.T) {
				var opts []Option
				if allow {
					opts = append(opts, AllowUnhandled())
				}
				ftb := &fakeTB{TB: t}
				sim := New(ftb, opts...)
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				defer cancel()
				resp, err := sim.HTTPClient().Do(send.req(sim).WithContext(ctx))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != send.status {
					t.Errorf("status %d, want %d", resp.StatusCode, send.status)
				}
				if u := sim.Unhandled(); len(u) != 1 || !strings.HasPrefix(u[0], send.want) {
					t.Errorf("Unhandled %q, want one entry starting %q", u, send.want)
				}
				ftb.runCleanups()
				if gotErr := len(ftb.errs) > 0; gotErr == allow {
					t.Fatalf("cleanup errors %q, want error = %v", ftb.errs, !allow)
				}
				if !allow && !strings.Contains(ftb.errs[0], send.want) {
					t.Errorf("cleanup error does not name what was sent: %q", ftb.errs[0])
				}
			})
		}
	}
}

func TestCloseEarly(t *testing.T) {
	sim := New(t)
	addr := sim.HTTPSAddr
	sim.Close()
	sim.Close()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("sim still listening after Close")
	}
}

// accept is a broker personality that accepts every CONNECT.
type accept struct{ seen chan broker.ConnectInfo }

func (accept) Claims(string) bool { return true }
func (a accept) Connect(info broker.ConnectInfo, _ broker.Outbound) (broker.Session, error) {
	a.seen <- info
	return session{}, nil
}

type session struct{}

func (session) Subscribe(string, byte) (byte, bool) { return 0, true }
func (session) Unsubscribe(string)                  {}
func (session) Publish(string, []byte, byte) error  { return nil }
func (session) Disconnected(error)                  {}

// TestAssemblerAndMQTT: components come from the assembler; an MQTT client
// dialing hub-eu.local:8883 through DialContext reaches the broker.
func TestAssemblerAndMQTT(t *testing.T) {
	p := accept{seen: make(chan broker.ConnectInfo, 1)}
	sim := New(t, WithAssembler(func(sp *server.Prepared, _ *slog.Logger) (server.Components, error) {
		b, err := broker.New(broker.Config{Personalities: []broker.Personality{p}})
		return server.Components{Broker: b}, err
	}))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	raw, err := sim.DialContext(ctx, "tcp", "hub-eu.local:8883")
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.TLSConfig()
	cfg.ServerName = "hub-eu.local"
	c := tls.Client(raw, cfg)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	var body []byte
	body = append(body, str("MQTT")...)
	body = append(body, 4, 0x02, 0, 60) // MQTT 3.1.1, clean session, keepalive 60
	body = append(body, str("dev1")...)
	if _, err := c.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
		t.Fatalf("CONNACK % x", ack)
	}
	if info := <-p.seen; info.ClientID != "dev1" || info.TLS == nil || info.TLS.ServerName != "hub-eu.local" {
		t.Errorf("broker saw %+v", info)
	}
}
