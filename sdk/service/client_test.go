package service

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/stream"
)

const testTimeout = 20 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// echoBridge upgrades a streaming-endpoint WebSocket that presents token and
// echoes binary frames until the client closes. It returns once the
// connection is gone (httptest's Close waits for handlers).
func echoBridge(t *testing.T, w http.ResponseWriter, r *http.Request, token string) {
	if r.Header.Get("Authorization") != "Bearer "+token {
		http.Error(w, "bad bearer", http.StatusUnauthorized)
		return
	}
	up := websocket.Upgrader{}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		t.Errorf("upgrade: %v", err)
		return
	}
	defer ws.Close()
	for {
		mt, b, err := ws.ReadMessage()
		if err != nil {
			return
		}
		if err := ws.WriteMessage(mt, b); err != nil {
			return
		}
	}
}

func TestOpenStreamAccepted(t *testing.T) {
	const token = "svc-token_123"
	var mu sync.Mutex
	var problems []string
	var f *fake
	f = newFake(t, "iothubowner", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/bridges/") {
			echoBridge(t, w, r, token)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if p := checkAuth(r, f.key, "iothubowner", time.Now()); p != "" {
			problems = append(problems, p)
		}
		if r.Method != http.MethodPost || r.URL.EscapedPath() != "/twins/dev%231/streams/ssh" {
			problems = append(problems, "request "+r.Method+" "+r.URL.EscapedPath())
		}
		if r.URL.RawQuery != "api-version=2020-09-30" {
			problems = append(problems, "query "+r.URL.RawQuery)
		}
		if c, rt := r.Header.Get("iothub-streaming-connect-timeout-in-seconds"), r.Header.Get("iothub-streaming-response-timeout-in-seconds"); c != "11" || rt != "30" {
			problems = append(problems, "timeouts "+c+"/"+rt)
		}
		w.Header().Set("iothub-streaming-is-accepted", "True")
		w.Header().Set("iothub-streaming-url", "wss://"+fakeHost+":443/bridges/hub/dev1/s1")
		w.Header().Set("iothub-streaming-auth-token", token)
	})
	c := f.hub(t)
	ctx := testCtx(t)
	conn, err := c.OpenStream(ctx, "dev#1", "ssh", WithConnectTimeout(10*time.Second+time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo %q %v", buf, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
}

func TestOpenStreamModule(t *testing.T) {
	f := newFake(t, "service", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.EscapedPath() != "/twins/dev1/modules/m%2F1/streams/tcp" {
			t.Errorf("path %s", r.URL.EscapedPath())
		}
		w.Header().Set("iothub-streaming-is-accepted", "false")
	})
	_, err := f.hub(t).RequestStream(testCtx(t), "dev1", "tcp", WithModule("m/1"))
	if !errors.Is(err, ErrStreamRejected) {
		t.Fatalf("err = %v", err)
	}
}

// TestStreamAnswers covers how OpenStream reads the hub's answers.
func TestStreamAnswers(t *testing.T) {
	tests := []struct {
		name     string
		answer   func(w http.ResponseWriter)
		wantErr  error
		wantKind retry.Kind
		wantWait time.Duration
		check    func(t *testing.T, e *Error)
	}{
		{name: "rejected", answer: func(w http.ResponseWriter) {
			w.Header().Set("iothub-streaming-is-accepted", "False")
		}, wantErr: ErrStreamRejected, wantKind: retry.Permanent},
		{name: "no header", answer: func(w http.ResponseWriter) {}, wantErr: ErrProtocol, wantKind: retry.Permanent},
		{name: "accepted without url", answer: func(w http.ResponseWriter) {
			w.Header().Set("iothub-streaming-is-accepted", "True")
			w.Header().Set("iothub-streaming-auth-token", "x")
		}, wantErr: ErrProtocol, wantKind: retry.Permanent},
		{name: "offline", answer: func(w http.ResponseWriter) {
			writeHubError(w, 404, "DeviceNotOnline", "device dev1 is not online")
		}, wantErr: ErrDeviceNotOnline, wantKind: retry.Permanent, check: func(t *testing.T, e *Error) {
			if e.StatusCode != 404 || e.ErrorCode != "DeviceNotOnline" || e.Message != "device dev1 is not online" {
				t.Errorf("%+v", e)
			}
		}},
		{name: "offline, azure body", answer: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"Message":"{\"errorCode\":404103,\"trackingId\":\"abc\",\"message\":\"Timed out waiting for device to connect.\",\"info\":{},\"timestampUtc\":\"2024-01-01T00:00:00Z\"}","ExceptionMessage":""}`))
		}, wantErr: ErrDeviceNotOnline, wantKind: retry.Permanent, check: func(t *testing.T, e *Error) {
			if e.ErrorNumber != 404103 || e.ErrorCode != "DeviceNotOnline" || e.TrackingID != "abc" || e.Message != "Timed out waiting for device to connect." {
				t.Errorf("%+v", e)
			}
			if errors.Is(e, ErrNotFound) {
				t.Error("DeviceNotOnline also matches ErrNotFound")
			}
		}},
		{name: "throttled", answer: func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "7")
			writeHubError(w, 429, "ThrottlingException", "too many streams")
		}, wantErr: ErrThrottled, wantKind: retry.After, wantWait: 7 * time.Second},
		{name: "device did not answer", answer: func(w http.ResponseWriter) {
			writeHubError(w, 504, "GatewayTimeout", "no answer")
		}, wantErr: ErrTimeout, wantKind: retry.Backoff},
		{name: "unauthorized", answer: func(w http.ResponseWriter) {
			writeHubError(w, 401, "IotHubUnauthorizedAccess", "bad token")
		}, wantErr: ErrUnauthorized, wantKind: retry.Permanent},
		{name: "unknown device", answer: func(w http.ResponseWriter) {
			writeHubError(w, 404, "DeviceNotFound", "no dev1")
		}, wantErr: ErrNotFound, wantKind: retry.Permanent},
		{name: "server error", answer: func(w http.ResponseWriter) {
			w.WriteHeader(503)
			_, _ = w.Write([]byte("busy\x00\x01"))
		}, wantKind: retry.Backoff, check: func(t *testing.T, e *Error) {
			if e.Message != "busy" {
				t.Errorf("message %q", e.Message)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, "iothubowner", func(w http.ResponseWriter, r *http.Request) { tt.answer(w) })
			conn, err := f.hub(t).OpenStream(testCtx(t), "dev1", "ssh")
			if err == nil {
				conn.Close()
				t.Fatal("no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			d := retry.Classify(err)
			if d.Kind != tt.wantKind || d.Wait != tt.wantWait {
				t.Errorf("classified %v/%v, want %v/%v", d.Kind, d.Wait, tt.wantKind, tt.wantWait)
			}
			var e *Error
			if tt.check != nil {
				if !errors.As(err, &e) {
					t.Fatalf("%v is not an *Error", err)
				}
				tt.check(t, e)
			}
			if strings.Contains(err.Error(), f.key) || strings.Contains(err.Error(), "sig=") {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestOpenStreamHandshakeRefused(t *testing.T) {
	f := newFake(t, "iothubowner", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/bridges/") {
			http.Error(w, "stream ended", http.StatusNotFound)
			return
		}
		w.Header().Set("iothub-streaming-is-accepted", "True")
		w.Header().Set("iothub-streaming-url", "wss://"+fakeHost+":443/bridges/x")
		w.Header().Set("iothub-streaming-auth-token", "tok")
	})
	_, err := f.hub(t).OpenStream(testCtx(t), "dev1", "ssh")
	var he *stream.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != 404 {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "tok") {
		t.Errorf("error leaks the stream token: %v", err)
	}
}

func TestStreamArgs(t *testing.T) {
	f := newFake(t, "iothubowner", func(w http.ResponseWriter, r *http.Request) { t.Errorf("unexpected request %s", r.URL) })
	c := f.hub(t)
	for _, args := range [][2]string{{"", "ssh"}, {"dev1", ""}, {"dev1", "a/b"}} {
		if _, err := c.OpenStream(testCtx(t), args[0], args[1]); !errors.Is(err, ErrConfig) {
			t.Errorf("%q: err = %v", args, err)
		}
	}
}

func TestStreamGrantString(t *testing.T) {
	g := StreamGrant{URL: "wss://h:443/b", Token: "secret"}
	if s := g.String(); strings.Contains(s, "secret") || !strings.Contains(s, "wss://h:443/b") {
		t.Errorf("String() = %q", s)
	}
}

func TestInvokeMethod(t *testing.T) {
	type body struct {
		MethodName               string          `json:"methodName"`
		ResponseTimeoutInSeconds *int            `json:"responseTimeoutInSeconds"`
		ConnectTimeoutInSeconds  *int            `json:"connectTimeoutInSeconds"`
		Payload                  json.RawMessage `json:"payload"`
	}
	tests := []struct {
		name        string
		payload     any
		timeout     time.Duration
		wantPayload string
		wantTimeout int
		wantErr     error
	}{
		{name: "nil payload, default timeout", payload: nil, wantPayload: "null", wantTimeout: 30},
		{name: "raw", payload: json.RawMessage(`{"a":1}`), timeout: 12 * time.Second, wantPayload: `{"a":1}`, wantTimeout: 12},
		{name: "bytes", payload: []byte(`[1,2]`), timeout: time.Second, wantPayload: `[1,2]`, wantTimeout: 5},
		{name: "struct", payload: map[string]int{"x": 2}, timeout: time.Hour, wantPayload: `{"x":2}`, wantTimeout: 300},
		{name: "fraction rounds up", payload: "s", timeout: 7500 * time.Millisecond, wantPayload: `"s"`, wantTimeout: 8},
		{name: "raw not json", payload: json.RawMessage(`{`), wantErr: ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAuthFake(t, "service", func(w http.ResponseWriter, r *http.Request) {
				if r.Method != "POST" || r.URL.EscapedPath() != "/twins/dev%20one/methods" || r.URL.RawQuery != "api-version=2021-04-12" {
					t.Errorf("request %s %s", r.Method, r.URL)
				}
				if ct := r.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
					t.Errorf("content type %q", ct)
				}
				var b body
				if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
					t.Fatal(err)
				}
				if b.MethodName != "reboot" || string(b.Payload) != tt.wantPayload ||
					b.ResponseTimeoutInSeconds == nil || *b.ResponseTimeoutInSeconds != tt.wantTimeout ||
					b.ConnectTimeoutInSeconds == nil || *b.ConnectTimeoutInSeconds != 0 {
					t.Errorf("body %+v payload %s", b, b.Payload)
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"status":201,"payload":{"ok":true}}`))
			})
			status, resp, err := f.hub(t).InvokeMethod(testCtx(t), "dev one", "reboot", tt.payload, tt.timeout)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || status != 201 || string(resp) != `{"ok":true}` {
				t.Fatalf("got %d %s %v", status, resp, err)
			}
		})
	}
}

func TestInvokeMethodErrors(t *testing.T) {
	f := newFake(t, "iothubowner", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "offline"):
			writeHubError(w, 404, "DeviceNotOnline", "not online")
		case strings.Contains(r.URL.Path, "nopayload"):
			_, _ = w.Write([]byte(`{"status":200}`))
		default:
			_, _ = w.Write([]byte(`not json`))
		}
	})
	c := f.hub(t)
	if _, _, err := c.InvokeMethod(testCtx(t), "offline", "m", nil, 0); !errors.Is(err, ErrDeviceNotOnline) {
		t.Errorf("offline: %v", err)
	}
	if st, p, err := c.InvokeMethod(testCtx(t), "nopayload", "m", nil, 0); err != nil || st != 200 || string(p) != "null" {
		t.Errorf("no payload: %d %s %v", st, p, err)
	}
	if _, _, err := c.InvokeMethod(testCtx(t), "garbage", "m", nil, 0); !errors.Is(err, ErrProtocol) {
		t.Errorf("garbage: %v", err)
	}
	if _, _, err := c.InvokeMethod(testCtx(t), "dev1", "", nil, 0); !errors.Is(err, ErrConfig) {
		t.Errorf("empty method: %v", err)
	}
}

// TestTokenCache: one token serves requests until it nears expiry.
func TestTokenCache(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var seen []string
	f := newFake(t, "iothubowner", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = w.Write([]byte(`{"deviceId":"d"}`))
	})
	f.cfg.Now = clock
	c := f.hub(t)
	get := func() {
		if _, err := c.GetDevice(testCtx(t), "d"); err != nil {
			t.Fatal(err)
		}
	}
	get()
	mu.Lock()
	now = now.Add(50 * time.Minute)
	mu.Unlock()
	get()
	mu.Lock()
	now = now.Add(6 * time.Minute) // within 5 min of the 1 h expiry
	mu.Unlock()
	get()
	if len(seen) != 3 || seen[0] != seen[1] || seen[1] == seen[2] {
		t.Errorf("tokens reused wrongly: %d distinct of %d", distinct(seen), len(seen))
	}
	if !strings.Contains(seen[0], "se=1700003600") {
		t.Errorf("first token does not expire in 1 h")
	}
}

func distinct(s []string) int {
	m := map[string]bool{}
	for _, v := range s {
		m[v] = true
	}
	return len(m)
}

func TestNewRejectsBadConfig(t *testing.T) {
	key := newKey(t)
	for _, cs := range []string{
		"",
		"HostName=h;SharedAccessKeyName=p",
		"HostName=h;SharedAccessKey=" + key,
		"HostName=h;SharedAccessKeyName=p;SharedAccessKey=not*base64",
		"HostName=h;DeviceId=d;SharedAccessKey=" + key,
	} {
		_, err := New(Config{ConnectionString: cs})
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%q: err = %v", cs, err)
		}
		if err != nil && strings.Contains(err.Error(), key) {
			t.Errorf("error leaks the key: %v", err)
		}
		if _, err := NewDPS(Config{ConnectionString: cs}); !errors.Is(err, ErrConfig) {
			t.Errorf("NewDPS %q: err = %v", cs, err)
		}
	}
}

// TestHostWithPort: a HostName with a port reaches that port, and the token
// covers the host without it.
func TestHostWithPort(t *testing.T) {
	f := newAuthFake(t, "iothubowner", func(w http.ResponseWriter, r *http.Request) {
		if r.Host != fakeHost+":8443" {
			t.Errorf("Host %q", r.Host)
		}
		_, _ = w.Write([]byte(`{"deviceId":"d"}`))
	})
	f.cfg.ConnectionString = strings.Replace(f.cfg.ConnectionString, "HostName="+fakeHost, "HostName="+fakeHost+":8443", 1)
	c := f.hub(t)
	if c.HostName() != fakeHost+":8443" {
		t.Errorf("HostName %q", c.HostName())
	}
	if _, err := c.GetDevice(testCtx(t), "d"); err != nil {
		t.Fatal(err)
	}
}

func TestCloseIdempotent(t *testing.T) {
	f := newFake(t, "iothubowner", func(w http.ResponseWriter, r *http.Request) {})
	c := f.hub(t)
	if c.Close() != nil || c.Close() != nil {
		t.Error("Close returned an error")
	}
}
