package doctor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/config"
)

func TestX509Credentials(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		nb, na    time.Time
		status    Status
		wantWords []string
	}{
		{"valid", now.Add(-time.Hour), now.Add(365 * 24 * time.Hour), StatusOK, []string{"CN=dev-x", "valid until 2026-06-01"}},
		{"expires soon", now.Add(-time.Hour), now.Add(10 * 24 * time.Hour), StatusWarn, []string{"expires on 2025-06-11", "new device certificate"}},
		{"expired", now.Add(-48 * time.Hour), now.Add(-24 * time.Hour), StatusFail, []string{"expired on 2025-05-31", "fix the clock first"}},
		{"not yet valid", now.Add(24 * time.Hour), now.Add(48 * time.Hour), StatusFail, []string{"not valid before 2025-06-02", "check the date"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Provisioning.IDScope, cfg.Provisioning.RegistrationID = "0ne00000001", "dev-x"
			cfg.Provisioning.Attestation = config.Attestation{Type: config.AttestX509, Certificate: leafCert(t, "dev-x", tt.nb, tt.na)}
			d := newDoctor(t.Context(), cfg, Options{Now: func() time.Time { return now }})
			d.credentials()
			want(t, Report{Checks: d.checks}, nameCreds, tt.status, tt.wantWords...)
		})
	}
}

func TestSymmetricCredentials(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(a *config.Attestation)
		status Status
		words  []string
	}{
		{"no key", func(a *config.Attestation) {}, StatusFail, []string{"no device key"}},
		{"group key without registration", func(a *config.Attestation) { a.GroupKey = config.NewSecret("QUJD") }, StatusFail, []string{"registration_id"}},
		{"not base64", func(a *config.Attestation) { a.DeviceKey = config.NewSecret("not base64!") }, StatusFail, []string{"not valid base64"}},
		{"good", func(a *config.Attestation) { a.DeviceKey = config.NewSecret("QUJDREVGR0g=") }, StatusOK, []string{"signs a DPS token"}},
		// The group key on a device exposes every sibling: warn with the fix.
		{"group key on the device", func(a *config.Attestation) {
			a.GroupKey, a.DeviceKey = config.NewSecret("QUJDREVGR0g="), config.NewSecret("SUpLTE1OT1A=")
		}, StatusWarn, []string{"every device in the group", "porthole dps derive-key", "symmetric_key_file"}},
		{"group key file on the device", func(a *config.Attestation) {
			a.GroupKeyFile, a.DeviceKey = "/etc/porthole/group.key", config.NewSecret("SUpLTE1OT1A=")
		}, StatusWarn, []string{"every device in the group", "dev-s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Provisioning.IDScope, cfg.Provisioning.RegistrationID = "0ne00000001", "dev-s"
			tt.edit(&cfg.Provisioning.Attestation)
			d := newDoctor(t.Context(), cfg, Options{})
			d.credentials()
			want(t, Report{Checks: d.checks}, nameCreds, tt.status, tt.words...)
		})
	}
}

func leafCert(t *testing.T, cn string, nb, na time.Time) *tls.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: nb, NotAfter: na}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k, Leaf: leaf}
}

// connectProxy is a minimal HTTP CONNECT proxy that wants Basic user:pass.
type connectProxy struct {
	ln      net.Listener
	mu      sync.Mutex
	conns   []net.Conn
	wg      sync.WaitGroup
	targets []string // CONNECT targets seen
}

func newConnectProxy(t *testing.T) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{ln: ln}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *connectProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *connectProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer c.Close()
			br := bufio.NewReader(c)
			req, err := http.ReadRequest(br)
			if err != nil || req.Method != http.MethodConnect {
				return
			}
			if req.Header.Get("Proxy-Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte("tech:s3cret")) {
				io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
				return
			}
			p.mu.Lock()
			p.targets = append(p.targets, req.Host)
			p.mu.Unlock()
			up, err := net.Dial("tcp", req.Host)
			if err != nil {
				io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
				return
			}
			p.track(up)
			defer up.Close()
			io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
			done := make(chan struct{})
			go func() { io.Copy(up, br); up.(*net.TCPConn).CloseWrite(); close(done) }()
			io.Copy(c, up)
			<-done
		}()
	}
}

func TestThroughProxy(t *testing.T) {
	e := newEnv(t)
	key := e.sim.EnrollSymmetricKey("dev-proxy", nil)
	proxy := newConnectProxy(t)
	tests := []struct {
		name   string
		user   *url.Userinfo
		status Status
		words  []string
	}{
		{"good credentials", url.UserPassword("tech", "s3cret"), StatusOK, []string{"via proxy " + proxy.ln.Addr().String()}},
		{"no credentials", nil, StatusFail, []string{"407", "user and password"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.config(t, device{regID: "dev-proxy", key: key})
			cfg.Proxy.URL = &url.URL{Scheme: "http", Host: proxy.ln.Addr().String(), User: tt.user}
			r := run(t, cfg, Options{LookupHost: func(context.Context, string) ([]string, error) {
				t.Error("DNS asked although a proxy is configured")
				return nil, nil
			}})
			want(t, r, nameDPSTLS, tt.status, tt.words...)
			if tt.status == StatusOK {
				want(t, r, nameDPSLookup, StatusOK, "has not registered yet") // the request went through too
			}
		})
	}
	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	if len(proxy.targets) == 0 || proxy.targets[0] != e.sim.HTTPSAddr {
		t.Errorf("CONNECT targets = %v, want the resolve override %s", proxy.targets, e.sim.HTTPSAddr)
	}
}

func TestWriteFormat(t *testing.T) {
	r := Report{Checks: []Check{
		{Name: "Config file", Status: StatusOK, Detail: "/etc/porthole/agent.yaml, mode 0600"},
		{Name: "Clock", Status: StatusWarn, Detail: "the device's clock is 2m0s ahead of the provisioning service's", Fix: "enable NTP so the clock stays right"},
		{Name: "TLS to the IoT hub", Status: StatusFail, Detail: "the server's certificate is not trusted", Fix: "set ca_file"},
		{Name: "Stream target", Status: StatusOK, Detail: "SSH server dropbear answers", Fix: "use -W 1048576"},
		{Name: "DNS for the IoT hub", Status: StatusSkip, Detail: "no hub is known yet"},
	}}
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		t.Fatal(err)
	}
	want := `[ ok ] Config file: /etc/porthole/agent.yaml, mode 0600
[WARN] Clock: the device's clock is 2m0s ahead of the provisioning service's
       fix: enable NTP so the clock stays right
[FAIL] TLS to the IoT hub: the server's certificate is not trusted
       fix: set ca_file
[ ok ] Stream target: SSH server dropbear answers
       tip: use -W 1048576
[skip] DNS for the IoT hub: no hub is known yet

1 failure, 1 warning: the agent will not work until the failures are fixed.
`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
	if r.OK() {
		t.Error("OK() with a failure")
	}
	r.Checks = r.Checks[:2]
	buf.Reset()
	r.Write(&buf)
	if !bytes.HasSuffix(buf.Bytes(), []byte("\nNo failures, 1 warning.\n")) || !r.OK() {
		t.Errorf("warnings only: %q OK=%v", buf.String(), r.OK())
	}
}

func TestParseBanner(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"SSH-2.0-OpenSSH_9.6p1 Debian-3\r\n", "OpenSSH_9.6p1 Debian-3", true},
		{"SSH-2.0-dropbear_2022.83", "dropbear_2022.83", true},
		{"SSH-1.99-Cisco-1.25", "Cisco-1.25", true},
		{"SSH-2.0-\x1b[31mevil\x07", "[31mevil", true},
		{"SSH-", "", false},
		{"HTTP/1.1 400 Bad Request", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := parseBanner(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseBanner(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParseBanner(f *testing.F) {
	for _, s := range []string{"SSH-2.0-OpenSSH_9.6\r\n", "SSH-2.0-dropbear", "SSH-", "x", "SSH-2.0-a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sw, ok := parseBanner(s)
		if ok != (sw != "") {
			t.Fatalf("ok=%v with software %q", ok, sw)
		}
		for _, r := range sw {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("control character in %q", sw)
			}
		}
	})
}
