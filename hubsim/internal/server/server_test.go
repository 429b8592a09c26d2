package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole-iot/porthole/hubsim/internal/broker"
	"github.com/porthole-iot/porthole/hubsim/internal/simconfig"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

func get(t *testing.T, c *http.Client, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// TestHealthzTLS reaches /healthz trusting only the hubsim CA, by IP (no
// SNI, IP SAN) and by host name (SNI, DNS SAN), over HTTP/1.1 even though
// the client offers h2.
func TestHealthzTLS(t *testing.T) {
	e := start(t, Components{})
	c := e.client(t)
	port := e.srv.HTTPSAddrs()[0][strings.LastIndex(e.srv.HTTPSAddrs()[0], ":")+1:]
	for _, host := range []string{"127.0.0.1", "hub-eu.local", "localhost"} {
		t.Run(host, func(t *testing.T) {
			resp, body := get(t, c, "https://"+net.JoinHostPort(host, port)+"/healthz")
			if resp.StatusCode != 200 || string(body) != `{"status":"ok"}` {
				t.Fatalf("%d %q", resp.StatusCode, body)
			}
			if resp.ProtoMajor != 1 {
				t.Errorf("proto %s, want HTTP/1.1", resp.Proto)
			}
			if resp.TLS == nil || resp.TLS.NegotiatedProtocol != "" {
				t.Errorf("ALPN negotiated %q, want none", resp.TLS.NegotiatedProtocol)
			}
		})
	}
	// A host name the certificate does not cover fails verification.
	if _, err := c.Get("https://" + net.JoinHostPort("elsewhere.example", port) + "/healthz"); err == nil {
		t.Error("TLS verified for a name outside the certificate")
	}
}

func TestTLSVersionFloor(t *testing.T) {
	e := start(t, Components{})
	d := tls.Dialer{Config: &tls.Config{RootCAs: e.ca.CertPool(), MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10}}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if c, err := d.DialContext(ctx, "tcp", e.srv.HTTPSAddrs()[0]); err == nil {
		c.Close()
		t.Fatal("TLS 1.1 handshake accepted")
	}
}

// TestClientCertificateReachesHandler: TLS asks for a client certificate
// without verifying it; handlers see it.
func TestClientCertificateReachesHandler(t *testing.T) {
	got := make(chan string, 1)
	e := start(t, Components{Hub: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := ""
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		got <- cn
		w.WriteHeader(204)
	})})
	certPEM, keyPEM, err := e.ca.IssueClient("dev-x509")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c := e.client(t)
	c.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{pair}
	resp, _ := get(t, c, "https://"+e.srv.HTTPSAddrs()[0]+"/devices/dev-x509")
	if resp.StatusCode != 204 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if cn := <-got; cn != "dev-x509" {
		t.Errorf("handler saw CN %q", cn)
	}
}

func TestUnhandledOverTLS(t *testing.T) {
	e := start(t, Components{})
	resp, body := get(t, e.client(t), "https://"+e.srv.HTTPSAddrs()[0]+"/no/such/path")
	if resp.StatusCode != 404 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	if !bytes.Contains(body, []byte("ErrorCode:IotHubNotFound")) {
		t.Errorf("body %q", body)
	}
	if u := e.srv.Unhandled(); len(u) != 1 || u[0] != "GET /no/such/path" {
		t.Errorf("Unhandled = %v", u)
	}
	e.srv.RecordUnhandled("topic $iothub/x")
	if u := e.srv.Unhandled(); len(u) != 2 || u[1] != "topic $iothub/x" {
		t.Errorf("Unhandled = %v", u)
	}
}

// TestWebSocketThroughRouter: the router's response writer passes Hijack
// through, so an upgrade works end to end over TLS.
func TestWebSocketThroughRouter(t *testing.T) {
	up := websocket.Upgrader{}
	e := start(t, Components{Relay: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		mt, p, err := ws.ReadMessage()
		if err != nil {
			return
		}
		_ = ws.WriteMessage(mt, p)
	})})
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: e.ca.CertPool()}, HandshakeTimeout: waitTimeout}
	ws, resp, err := d.Dial("wss://"+e.srv.HTTPSAddrs()[0]+"/bridges/h/d/1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	_, p, err := ws.ReadMessage()
	if err != nil || string(p) != "ping" {
		t.Fatalf("echo %q %v", p, err)
	}
}

// TestCloseCancelsHandlers: Close cancels the contexts of in-flight
// requests (including hijacked ones) and waits for the handlers.
func TestCloseCancelsHandlers(t *testing.T) {
	entered := make(chan struct{})
	var returned sync.WaitGroup
	returned.Add(1)
	e := start(t, Components{Hub: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer returned.Done()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		close(entered)
		<-r.Context().Done()
	})})
	c := e.client(t)
	errc := make(chan error, 1)
	go func() {
		resp, err := c.Get("https://" + e.srv.HTTPSAddrs()[0] + "/devices/long")
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-entered
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	returned.Wait() // Close returned only after the handler did
	if err := <-errc; err == nil {
		t.Error("hijacked request unexpectedly got a response")
	}
	if err := e.srv.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := e.srv.Start(Components{}); err == nil {
		t.Error("Start after Close succeeded")
	}
	if _, err := net.DialTimeout("tcp", e.srv.HTTPSAddrs()[0], time.Second); err == nil {
		t.Error("HTTPS port still accepting after Close")
	}
}

func TestCloseWithoutStart(t *testing.T) {
	e := start(t, Components{}) // cleanup closes it again
	srv, err := New(Config{Certificate: e.ca.ServerCertificate()})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.MQTTAddrs()[0]
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if ln, err := net.Listen("tcp", addr); err != nil {
		t.Errorf("port not released: %v", err)
	} else {
		ln.Close()
	}
}

func TestSeveralListenAddresses(t *testing.T) {
	e := start(t, Components{}, "127.0.0.1", "127.0.0.2")
	h, m := e.srv.HTTPSAddrs(), e.srv.MQTTAddrs()
	if len(h) != 2 || len(m) != 2 {
		t.Fatalf("addrs %v %v", h, m)
	}
	for i, want := range []string{"127.0.0.1", "127.0.0.2"} {
		if !strings.HasPrefix(h[i], want+":") || !strings.HasSuffix(h[i], ":"+itoa(e.srv.HTTPSPort())) {
			t.Errorf("https addr %s", h[i])
		}
		if !strings.HasPrefix(m[i], want+":") || !strings.HasSuffix(m[i], ":"+itoa(e.srv.MQTTPort())) {
			t.Errorf("mqtt addr %s", m[i])
		}
	}
	// The second address answers too, and its IP is in the certificate.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.ca.CertPool()}}
	defer tr.CloseIdleConnections()
	resp, _ := get(t, &http.Client{Transport: tr, Timeout: waitTimeout}, "https://"+h[1]+"/healthz")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	e := start(t, Components{})
	_, err = New(Config{HTTPSPort: ln.Addr().(*net.TCPAddr).Port, Certificate: e.ca.ServerCertificate()})
	if err == nil {
		t.Fatal("New succeeded on a port in use")
	}
}

// --- MQTT ---------------------------------------------------------------

// acceptAll is a broker personality that accepts every CONNECT and
// remembers what it saw.
type acceptAll struct{ seen chan broker.ConnectInfo }

func (acceptAll) Claims(string) bool { return true }
func (a acceptAll) Connect(info broker.ConnectInfo, _ broker.Outbound) (broker.Session, error) {
	a.seen <- info
	return nopSession{}, nil
}

type nopSession struct{}

func (nopSession) Subscribe(string, byte) (byte, bool) { return 0, true }
func (nopSession) Unsubscribe(string)                  {}
func (nopSession) Publish(string, []byte, byte) error  { return nil }
func (nopSession) Disconnected(error)                  {}

// connectPacket builds an MQTT 3.1.1 CONNECT (clean session, user+password).
func connectPacket(clientID, user, pass string) []byte {
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	var body []byte
	body = append(body, str("MQTT")...)
	body = append(body, 4, 0xC2, 0, 60) // level 4; user, password, clean; keepalive 60
	body = append(body, str(clientID)...)
	body = append(body, str(user)...)
	body = append(body, str(pass)...)
	return append([]byte{0x10, byte(len(body))}, body...) // body < 128 bytes
}

// TestMQTTReachesBroker: a CONNECT over TLS on the MQTT port reaches the
// real broker, which sees the TLS state and the transport name.
func TestMQTTReachesBroker(t *testing.T) {
	p := acceptAll{seen: make(chan broker.ConnectInfo, 1)}
	b, err := broker.New(broker.Config{Personalities: []broker.Personality{p}})
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, Components{Broker: b})
	d := tls.Dialer{Config: &tls.Config{RootCAs: e.ca.CertPool(), ServerName: "hub-eu.local"}}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", e.srv.MQTTAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := c.Write(connectPacket("dev1", "hub-eu.local/dev1/?api-version=2021-04-12", "SharedAccessSignature sr=x")); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
		t.Fatalf("CONNACK % x, want accepted", ack)
	}
	info := <-p.seen
	if info.ClientID != "dev1" || info.Transport != TransportMQTT || info.TLS == nil || info.TLS.ServerName != "hub-eu.local" {
		t.Errorf("broker saw %+v", info)
	}
	// Closing the server closes the broker, which drops the client.
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("MQTT connection survived Close")
	}
}

func TestMQTTWithoutBroker(t *testing.T) {
	e := start(t, Components{})
	d := tls.Dialer{Config: &tls.Config{RootCAs: e.ca.CertPool()}}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", e.srv.MQTTAddrs()[0])
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(waitTimeout))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection not closed: %v", err)
	}
	// The refusal is recorded (the accept loop records before closing).
	testwait.True(t, waitTimeout, "the refusal to be recorded", func() bool { return len(e.srv.Unhandled()) > 0 })
	if u := e.srv.Unhandled(); len(u) != 1 || !strings.Contains(u[0], "no broker") {
		t.Errorf("Unhandled = %v", u)
	}
}

// --- status --------------------------------------------------------------

func TestStatusFile(t *testing.T) {
	cfg := simconfig.Default()
	cfg.StateDir = t.TempDir()
	cfg.Ports = simconfig.Ports{}
	p, err := Prepare(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Server.Close()
	st := p.Status()
	path := filepath.Join(t.TempDir(), "status.json")
	if err := WriteStatusFile(path, st); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("status file mode %v", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	// Decode generically to pin the exact key names.
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		return strings.Join(slices.Sorted(slices.Values(ks)), ",")
	}
	if got := keys(raw); got != "admin_token,ca_file,dps,hubs,ports" {
		t.Errorf("top keys %s", got)
	}
	if got := keys(raw["ports"].(map[string]any)); got != "https,mqtt" {
		t.Errorf("ports keys %s", got)
	}
	if got := keys(raw["dps"].(map[string]any)); got != "global_endpoint,id_scope,service_connection_string" {
		t.Errorf("dps keys %s", got)
	}
	hubs := raw["hubs"].([]any)
	if len(hubs) != 2 {
		t.Fatalf("hubs %v", hubs)
	}
	if got := keys(hubs[0].(map[string]any)); got != "hostname,name,service_connection_string" {
		t.Errorf("hub keys %s", got)
	}
	var back Status
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.CAFile != p.PKI.CAFile() || back.Ports.HTTPS != p.Server.HTTPSPort() || back.Ports.MQTT != p.Server.MQTTPort() {
		t.Errorf("status %+v", back)
	}
	if back.DPS.IDScope != "0ne00000001" || back.DPS.GlobalEndpoint != "global.dps.local" ||
		!strings.HasPrefix(back.DPS.ServiceConnectionString, "HostName=dps.local;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=") {
		t.Errorf("dps %+v", back.DPS)
	}
	if back.Hubs[0].Name != "hub-eu" || back.Hubs[0].HostName != "hub-eu.local" ||
		!strings.HasPrefix(back.Hubs[0].ServiceConnectionString, "HostName=hub-eu.local;SharedAccessKeyName=iothubowner;SharedAccessKey=") {
		t.Errorf("hub %+v", back.Hubs[0])
	}

	var banner bytes.Buffer
	if err := st.WriteBanner(&banner); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{p.PKI.CAFile(), "0ne00000001", "global.dps.local", back.DPS.ServiceConnectionString, back.Hubs[1].ServiceConnectionString} {
		if !strings.Contains(banner.String(), want) {
			t.Errorf("banner lacks %q", want)
		}
	}
}

func TestPrepareRejectsInvalidConfig(t *testing.T) {
	cfg := simconfig.Default()
	cfg.StateDir = t.TempDir()
	cfg.Hubs = nil
	if _, err := Prepare(cfg, nil); err == nil {
		t.Fatal("Prepare accepted a config without hubs")
	}
}
