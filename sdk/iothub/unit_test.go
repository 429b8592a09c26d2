package iothub

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/retry"
)

const testKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" // 32 bytes

func TestConfigValidation(t *testing.T) {
	cert := &tls.Certificate{}
	ok := Config{HostName: "h.example", DeviceID: "d", SharedAccessKey: testKey}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string // "" = valid
	}{
		{"minimal", func(*Config) {}, ""},
		{"module and websocket", func(c *Config) { c.ModuleID = "m"; c.Transport = TransportMQTTWS }, ""},
		{"x509", func(c *Config) { c.SharedAccessKey = ""; c.Certificate = cert }, ""},
		{"no host", func(c *Config) { c.HostName = "" }, "HostName is empty"},
		{"bad device id", func(c *Config) { c.DeviceID = "a/b" }, "DeviceID"},
		{"wildcard module id", func(c *Config) { c.ModuleID = "m#" }, "ModuleID"},
		{"no credential", func(c *Config) { c.SharedAccessKey = "" }, "neither"},
		{"two credentials", func(c *Config) { c.Certificate = cert }, "both"},
		{"bad key", func(c *Config) { c.SharedAccessKey = "not base64!" }, "SharedAccessKey"},
		{"bad transport", func(c *Config) { c.Transport = "amqp" }, "Transport"},
		{"bad port", func(c *Config) { c.Port = 70000 }, "Port"},
		{"socks proxy", func(c *Config) { c.ProxyURL = &url.URL{Scheme: "socks5", Host: "p:1080"} }, "ProxyURL"},
		{"tiny keepalive", func(c *Config) { c.Keepalive = time.Millisecond }, "Keepalive"},
		{"tiny ttl", func(c *Config) { c.TokenTTL = time.Second }, "TokenTTL"},
		{"several problems", func(c *Config) { c.HostName = ""; c.Transport = "x" }, "HostName is empty; unknown Transport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			s, err := cfg.settings()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if s.Keepalive != DefaultKeepalive || s.TokenTTL != DefaultTokenTTL || s.pingTimeout != DefaultPingTimeout {
					t.Errorf("defaults not applied: %+v", s.Config)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want ErrInvalidConfig mentioning %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Fatal("error shows the key")
			}
		})
	}
}

func TestSettingsWire(t *testing.T) {
	tests := []struct {
		cfg                  Config
		user, clientID, addr string
	}{
		{
			Config{HostName: "hub.example", DeviceID: "dev1", SharedAccessKey: testKey, ProductInfo: "porthole/1.2 (linux)"},
			"hub.example/dev1/?api-version=2020-09-30&DeviceClientType=porthole%2F1.2%20%28linux%29", "dev1", "hub.example:8883",
		},
		{
			Config{HostName: "hub.example", DeviceID: "dev1", ModuleID: "mod", SharedAccessKey: testKey, Transport: TransportMQTTWS, ProductInfo: "p"},
			"hub.example/dev1/mod/?api-version=2020-09-30&DeviceClientType=p", "dev1/mod", "hub.example:443",
		},
		{
			Config{HostName: "127.0.0.1", DeviceID: "d", Certificate: &tls.Certificate{}, Port: 18883, ProductInfo: "p"},
			"127.0.0.1/d/?api-version=2020-09-30&DeviceClientType=p", "d", "127.0.0.1:18883",
		},
	}
	for _, tt := range tests {
		s, err := tt.cfg.settings()
		if err != nil {
			t.Fatal(err)
		}
		if s.username != tt.user || s.clientID != tt.clientID || (dialer{s}).hubAddr() != tt.addr {
			t.Errorf("username %q client id %q addr %q, want %q %q %q", s.username, s.clientID, dialer{s}.hubAddr(), tt.user, tt.clientID, tt.addr)
		}
		if tc := s.tlsConfig(s.HostName); tc.ServerName != tt.cfg.HostName || tc.MinVersion != tls.VersionTLS12 {
			t.Errorf("TLS config %+v", tc)
		}
	}
	s, _ := Config{HostName: "h", DeviceID: "d", SharedAccessKey: testKey}.settings()
	if !strings.HasPrefix(s.ProductInfo, "porthole/") {
		t.Errorf("default product info %q", s.ProductInfo)
	}
}

func TestConnectErrorClassification(t *testing.T) {
	tests := []struct {
		rc     byte
		status int
		kind   retry.Kind
	}{
		{ConnRefusedProtocolVersion, http.StatusBadRequest, retry.Permanent},
		{ConnRefusedIdentifier, http.StatusUnauthorized, retry.Permanent},
		{ConnRefusedUnavailable, http.StatusServiceUnavailable, retry.Backoff},
		{ConnRefusedBadCredentials, http.StatusUnauthorized, retry.Permanent},
		{ConnRefusedNotAuthorized, http.StatusUnauthorized, retry.Permanent},
	}
	for _, tt := range tests {
		err := error(&ConnectError{ReturnCode: tt.rc})
		if got := err.(retry.StatusCoder).HTTPStatus(); got != tt.status {
			t.Errorf("0x%02x: status %d, want %d", tt.rc, got, tt.status)
		}
		if got := retry.Classify(err).Kind; got != tt.kind {
			t.Errorf("0x%02x: %v, want %v", tt.rc, got, tt.kind)
		}
		if !strings.Contains(err.Error(), "CONNACK 0x0") {
			t.Errorf("message %q", err)
		}
	}
	lost := &lostError{cause: context.DeadlineExceeded}
	if !errors.Is(lost, ErrConnectionLost) {
		t.Error("lostError is not ErrConnectionLost")
	}
	if got := retry.Classify(asTransient(lost)).Kind; got != retry.Backoff {
		t.Errorf("asTransient: %v, want backoff", got)
	}
	se := statusError(429, []byte(`{"errorCode":429001,"message":"throttled"}`))
	if got := retry.Classify(se).Kind; got != retry.Backoff || !strings.Contains(se.Error(), "throttled") {
		t.Errorf("429 twin answer: %v %v", got, se)
	}
}

func TestParseTwin(t *testing.T) {
	tw, err := parseTwin([]byte(`{"desired":{"a":1,"$version":7,"$metadata":{}},"reported":{"b":"x","$version":3}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Twin{Desired: map[string]any{"a": float64(1)}, Reported: map[string]any{"b": "x"}, DesiredVersion: 7, ReportedVersion: 3}
	if !reflect.DeepEqual(tw, want) {
		t.Fatalf("got %+v, want %+v", tw, want)
	}
	if _, err := parseTwin([]byte(`{"desired":[]}`)); err == nil {
		t.Error("accepted an array as desired")
	}
	tw, err = parseTwin([]byte(`{}`))
	if err != nil || tw.Desired == nil || tw.Reported == nil {
		t.Errorf("empty twin: %+v, %v", tw, err)
	}
}

func FuzzParseTwin(f *testing.F) {
	f.Add([]byte(`{"desired":{"a":1,"$version":7},"reported":{"$version":3}}`))
	f.Add([]byte(`{"desired":{"$version":1.5}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"desired":{"$version":"7"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tw, err := parseTwin(b)
		if err != nil {
			return
		}
		if _, ok := tw.Desired["$version"]; ok {
			t.Fatal("$version left in desired")
		}
		if _, ok := tw.Reported["$version"]; ok {
			t.Fatal("$version left in reported")
		}
	})
}

// The resync rule: applying diffDocs(a, b) to a with merge-patch rules
// gives b.
func TestDiffMergeRoundTrip(t *testing.T) {
	docs := []string{
		`{}`,
		`{"a":1,"b":{"x":1,"y":2},"c":[1,2]}`,
		`{"a":2,"b":{"x":1},"d":"s"}`,
		`{"b":3}`,
		`{"b":{"z":{"deep":true}},"c":[2,1]}`,
	}
	for _, from := range docs {
		for _, to := range docs {
			a, b := decodeDoc(t, from), decodeDoc(t, to)
			d := diffDocs(a, b)
			if got := mergePatch(a, d); !reflect.DeepEqual(got, b) {
				t.Errorf("merge(%s, diff) = %v, want %s (diff %v)", from, got, to, d)
			}
			if !reflect.DeepEqual(a, decodeDoc(t, from)) {
				t.Fatal("mergePatch changed its input")
			}
		}
	}
}

func FuzzDiffMerge(f *testing.F) {
	f.Add(`{"a":1,"b":{"x":1}}`, `{"b":{"y":2},"c":null}`)
	f.Add(`{}`, `{"a":[{"b":1}]}`)
	f.Fuzz(func(t *testing.T, from, to string) {
		var a, b map[string]any
		if json.Unmarshal([]byte(from), &a) != nil || json.Unmarshal([]byte(to), &b) != nil || a == nil || b == nil {
			return
		}
		b = stripNulls(b) // a document (unlike a patch) has no nulls
		if got := mergePatch(a, diffDocs(a, b)); !reflect.DeepEqual(got, b) {
			t.Fatalf("merge(a, diff(a, b)) = %v, want %v", got, b)
		}
	})
}

func stripNulls(m map[string]any) map[string]any {
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			m[k] = stripNulls(x)
		}
	}
	return m
}

func decodeDoc(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestQueueOrderAndStop(t *testing.T) {
	q := newQueue()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.run(ctx)
	}()
	got := make(chan int, 100)
	for i := range 100 {
		q.push(func() { got <- i })
	}
	for i := range 100 {
		if v := recv(t, got); v != i {
			t.Fatalf("got %d, want %d", v, i)
		}
	}
	cancel()
	<-done
}

// silentListener accepts TCP connections and never answers, holding them
// until the test ends.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

func TestDialGivesUpOnSilentServer(t *testing.T) {
	addr := silentListener(t)
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	for _, transport := range []string{TransportMQTT, TransportMQTTWS} {
		t.Run(transport+"/ctx", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			_, err := Dial(ctx, Config{HostName: host, Port: p, DeviceID: "d", SharedAccessKey: testKey, Transport: transport})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Dial: %v, want the context's deadline", err)
			}
		})
		t.Run(transport+"/ConnectTimeout", func(t *testing.T) {
			_, err := Dial(context.Background(), Config{HostName: host, Port: p, DeviceID: "d", SharedAccessKey: testKey,
				Transport: transport, ConnectTimeout: 200 * time.Millisecond})
			if err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Dial: %v, want a transport timeout", err)
			}
			if k := retry.Classify(err).Kind; k != retry.Backoff {
				t.Fatalf("Dial error %v classifies as %v, want backoff", err, k)
			}
		})
	}
}

func TestDialCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Dial(ctx, Config{HostName: "hub.invalid", DeviceID: "d", SharedAccessKey: testKey,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return nil, ctx.Err() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial: %v, want context.Canceled", err)
	}
}

// TestDialErrorNamesEachStepOnce: a refused connection reads
// "iothub: connect to <hub>: network Error : dial tcp <address>:
// connection refused" — the package once (it used to repeat
// "iothub: dial <hub>:" inside), whatever dialer is used.
func TestDialErrorNamesEachStepOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	for _, tc := range []struct {
		name string
		dial func(ctx context.Context, network, addr string) (net.Conn, error)
		want string // the part after "network Error : "
	}{
		{"net.Dialer", nil, "dial tcp " + addr + ": connect: connection refused"},
		{"custom dialer", func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("no route") },
			"network Error : dial: no route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Dial(context.Background(), Config{HostName: host, Port: p, DeviceID: "d", SharedAccessKey: testKey,
				DialContext: tc.dial, Retry: retry.Policy{MaxAttempts: 1}})
			if err == nil {
				t.Fatal("Dial succeeded")
			}
			if got := err.Error(); !strings.HasSuffix(got, tc.want) || strings.Count(got, "iothub:") != 1 {
				t.Errorf("error %q\nwant \"iothub:\" once, ending in %q", got, tc.want)
			}
		})
	}
}
