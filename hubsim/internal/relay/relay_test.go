package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/porthole-iot/porthole/sdk/stream"
)

// echo copies everything c reads back to c until EOF or error.
func echo(c *stream.Conn) <-chan error {
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					done <- werr
					return
				}
			}
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				done <- err
				return
			}
		}
	}()
	return done
}

func TestEchoThroughRelay(t *testing.T) {
	tests := []struct {
		name        string
		deviceFirst bool
		module      string
	}{
		{"device first", true, ""},
		{"service first", false, ""},
		{"module stream", true, "mod1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			tk := e.create(t, StreamSpec{ModuleID: tt.module})
			var dev, svc *stream.Conn
			if tt.deviceFirst {
				dev = e.mustDial(t, tk.URL, tk.DeviceToken)
				svc = e.mustDial(t, tk.URL, tk.ServiceToken)
			} else {
				svc = e.mustDial(t, tk.URL, tk.ServiceToken)
				dev = e.mustDial(t, tk.URL, tk.DeviceToken)
			}
			echoed := echo(dev)

			data := make([]byte, 1<<20)
			rand.Read(data)
			werr := make(chan error, 1)
			go func() { _, err := svc.Write(data); werr <- err }()
			got := make([]byte, len(data))
			if _, err := io.ReadFull(svc, got); err != nil {
				t.Fatalf("reading the echo: %v", err)
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("echo differs from what was sent")
			}
			// The service closing closes the device side: the echo loop
			// sees EOF.
			svc.Close()
			if err := <-echoed; err != nil {
				t.Fatalf("device side ended with %v, want EOF", err)
			}
			e.relay.Close() // waits for the handlers, so the log is complete
			st := e.relay.Stats()
			if st.BytesDeviceToService != 1<<20 || st.BytesServiceToDevice != 1<<20 || st.Total != 1 || st.Active != 0 {
				t.Fatalf("Stats = %+v", st)
			}
			ops := opNames(e.events.records(t))
			if ops != "requested connected closed" {
				t.Fatalf("events %q", ops)
			}
		})
	}
}

func opNames(recs []record) string {
	var s []string
	for _, r := range recs {
		s = append(s, r.OperationName)
	}
	return strings.Join(s, " ")
}

func TestTicketURLAndTokens(t *testing.T) {
	e := newEnv(t, Config{})
	tests := []struct {
		spec     StreamSpec
		wantPath string
	}{
		{StreamSpec{Hub: "h.azure-devices.net", DeviceID: "dev 1?", Name: "ssh"}, "/bridges/h.azure-devices.net/dev%201%3F/ssh/"},
		{StreamSpec{Hub: "h.azure-devices.net", DeviceID: "d", ModuleID: "m/1", Name: "s"}, "/bridges/h.azure-devices.net/d/modules/m%2F1/s/"},
	}
	token := regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	for _, tt := range tests {
		tk := e.create(t, tt.spec)
		u, err := url.Parse(tk.URL)
		if err != nil {
			t.Fatal(err)
		}
		if u.Scheme != "wss" || u.Port() == "" || u.RawQuery != "" || strings.Contains(tk.URL, "?") {
			t.Errorf("URL %q: want wss, explicit port, no query", tk.URL)
		}
		if !strings.HasPrefix(u.EscapedPath(), tt.wantPath) || !strings.HasSuffix(tk.URL, "/"+tk.ID) {
			t.Errorf("URL path %q, want prefix %q and the id last", u.EscapedPath(), tt.wantPath)
		}
		if !token.MatchString(tk.DeviceToken) || !token.MatchString(tk.ServiceToken) || tk.DeviceToken == tk.ServiceToken {
			t.Errorf("tokens %q %q: want two different 43-char base64url tokens", tk.DeviceToken, tk.ServiceToken)
		}
		// The URL works as given, with the unusual characters.
		c := e.mustDial(t, tk.URL, tk.DeviceToken)
		c.Close()
	}
	if got := e.relay.Endpoints("h"); len(got) != 1 || !strings.HasPrefix(got[0], "https://127.0.0.1:") {
		t.Errorf("Endpoints = %q", got)
	}
}

func TestRefusedConnections(t *testing.T) {
	e := newEnv(t, Config{})
	tk := e.create(t, StreamSpec{})
	other := e.create(t, StreamSpec{DeviceID: "dev2"})
	e.mustDial(t, tk.URL, tk.DeviceToken) // the device side is now taken

	wrongDevice := strings.Replace(tk.URL, "/dev1/", "/dev2/", 1)
	unknownID := tk.URL[:strings.LastIndex(tk.URL, "/")+1] + "0123456789abcdef"
	tests := []struct {
		name   string
		url    string
		token  string
		status int
	}{
		{"token reused", tk.URL, tk.DeviceToken, http.StatusUnauthorized},
		{"other stream's token", tk.URL, other.ServiceToken, http.StatusUnauthorized},
		{"wrong token", tk.URL, "not-the-token", http.StatusUnauthorized},
		{"path names another device", wrongDevice, tk.ServiceToken, http.StatusNotFound},
		{"unknown stream", unknownID, tk.ServiceToken, http.StatusNotFound},
		{"bad path", tk.URL + "/extra", tk.ServiceToken, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.dial(t, tt.url, tt.token)
			var he *stream.HandshakeError
			if !errors.As(err, &he) || he.StatusCode != tt.status {
				t.Fatalf("Dial: %v, want status %d", err, tt.status)
			}
		})
	}
	t.Run("missing token", func(t *testing.T) {
		d := websocket.Dialer{TLSClientConfig: e.tlsConfig()}
		c, resp, err := d.Dial(tk.URL, nil)
		if err == nil {
			c.Close()
		}
		if resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("Dial without token: %v, %v", resp, err)
		}
	})
	t.Run("not an upgrade", func(t *testing.T) {
		hu := strings.Replace(tk.URL, "wss://", "https://", 1)
		req, _ := http.NewRequest("GET", hu, nil)
		req.Header.Set("Authorization", "Bearer "+tk.ServiceToken)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d, want 400", resp.StatusCode)
		}
	})
	// The refusals above spent nothing: the service token still works.
	e.mustDial(t, tk.URL, tk.ServiceToken)
}

// manualTimer replaces the handshake timer so the test fires it.
type manualTimer struct {
	mu    sync.Mutex
	d     time.Duration
	f     func()
	fired bool
}

func (m *manualTimer) Stop() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	was := !m.fired
	m.fired = true
	return was
}

func (m *manualTimer) fire() {
	if m.Stop() {
		m.f()
	}
}

func TestHandshakeTimeout(t *testing.T) {
	e := newEnv(t, Config{})
	timers := make(chan *manualTimer, 1)
	e.relay.afterFunc = func(d time.Duration, f func()) stopper {
		m := &manualTimer{d: d, f: f}
		timers <- m
		return m
	}
	tk := e.create(t, StreamSpec{HandshakeTimeout: 5 * time.Second})
	timer := <-timers
	if timer.d != 5*time.Second {
		t.Fatalf("timer set for %v, want the spec's 5s", timer.d)
	}
	dev := e.mustDial(t, tk.URL, tk.DeviceToken)
	timer.fire()
	err := readErr(t, dev)
	var ce *stream.CloseError
	if !errors.As(err, &ce) || ce.Code != closeError {
		t.Fatalf("waiting side: %v, want CloseError %d", err, closeError)
	}
	// The stream is gone: the service cannot join any more.
	_, err = e.dial(t, tk.URL, tk.ServiceToken)
	var he *stream.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusNotFound {
		t.Fatalf("late service: %v, want 404", err)
	}
	e.relay.Close()
	recs := e.events.records(t)
	if last := recs[len(recs)-1]; last.OperationName != "closed" || !strings.Contains(last.Properties, `"status":"timeout"`) || last.Level != "Error" {
		t.Fatalf("last event %+v", last)
	}
}

func TestExpiredTokenFakeClock(t *testing.T) {
	clk := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	e := newEnv(t, Config{Now: clk.Now})
	tk := e.create(t, StreamSpec{})
	clk.Advance(61 * time.Second)
	_, err := e.dial(t, tk.URL, tk.DeviceToken)
	var he *stream.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusGone {
		t.Fatalf("Dial after the handshake timeout: %v, want 410", err)
	}
	if st := e.relay.Stats(); st.Pending != 0 {
		t.Fatalf("expired stream still pending: %+v", st)
	}
}

func TestSideEndsClosesOther(t *testing.T) {
	tests := []struct {
		name     string
		abrupt   bool
		wantCode int // 0 = EOF
	}{
		{"device closes", false, 0},
		{"device drops", true, closeGoingAway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			tk := e.create(t, StreamSpec{})
			dev, raw := e.dialRaw(t, tk.URL, tk.DeviceToken)
			svc := e.mustDial(t, tk.URL, tk.ServiceToken)
			if _, err := dev.Write([]byte("last words")); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 10)
			if _, err := io.ReadFull(svc, got); err != nil || string(got) != "last words" {
				t.Fatalf("read %q, %v", got, err)
			}
			if tt.abrupt {
				raw.Close()
			} else {
				dev.Close()
			}
			err := readErr(t, svc)
			var ce *stream.CloseError
			switch {
			case tt.wantCode == 0 && err != io.EOF:
				t.Fatalf("service side: %v, want EOF", err)
			case tt.wantCode != 0 && (!errors.As(err, &ce) || ce.Code != tt.wantCode):
				t.Fatalf("service side: %v, want CloseError %d", err, tt.wantCode)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t, Config{})
	tk := e.create(t, StreamSpec{})
	e.relay.Accepted(tk.ID)
	dev := e.mustDial(t, tk.URL, tk.DeviceToken)
	e.relay.Cancel(tk.ID, "device rejected the stream")
	var ce *stream.CloseError
	if err := readErr(t, dev); !errors.As(err, &ce) || ce.Code != closeError {
		t.Fatalf("device side after Cancel: %v", err)
	}
	if _, err := e.dial(t, tk.URL, tk.ServiceToken); err == nil {
		t.Fatal("service token still works after Cancel")
	}
	e.relay.Cancel(tk.ID, "again") // ended streams are ignored
	e.relay.Close()
	if ops := opNames(e.events.records(t)); ops != "requested accepted rejected closed" {
		t.Fatalf("events %q", ops)
	}
}

func TestThrottled(t *testing.T) {
	t.Run("concurrent", func(t *testing.T) {
		e := newEnv(t, Config{MaxConcurrent: 2})
		a := e.create(t, StreamSpec{})
		e.create(t, StreamSpec{})
		if _, err := e.relay.Create(StreamSpec{Hub: "hub1.azure-devices.net", DeviceID: "d", Name: "s"}); !errors.Is(err, ErrThrottled) {
			t.Fatalf("third stream: %v, want ErrThrottled", err)
		}
		if _, err := e.relay.Create(StreamSpec{Hub: "hub2.azure-devices.net", DeviceID: "d", Name: "s"}); err != nil {
			t.Fatalf("other hub: %v", err)
		}
		e.relay.Cancel(a.ID, "test")
		e.create(t, StreamSpec{}) // a slot is free again
	})
	t.Run("rate", func(t *testing.T) {
		clk := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
		e := newEnv(t, Config{MaxNewPerSecond: 3, Now: clk.Now})
		for range 3 {
			e.create(t, StreamSpec{})
		}
		if _, err := e.relay.Create(StreamSpec{Hub: "hub1.azure-devices.net", DeviceID: "d", Name: "s"}); !errors.Is(err, ErrThrottled) {
			t.Fatalf("4th stream in a second: %v, want ErrThrottled", err)
		}
		clk.Advance(400 * time.Millisecond) // refills 1.2 tokens
		e.create(t, StreamSpec{})
		if _, err := e.relay.Create(StreamSpec{Hub: "hub1.azure-devices.net", DeviceID: "d", Name: "s"}); !errors.Is(err, ErrThrottled) {
			t.Fatalf("after a partial refill: %v, want ErrThrottled", err)
		}
		clk.Advance(time.Second)
		for range 3 {
			e.create(t, StreamSpec{})
		}
	})
}

func TestCloseEndsEverything(t *testing.T) {
	e := newEnv(t, Config{})
	paired := e.create(t, StreamSpec{})
	half := e.create(t, StreamSpec{})
	e.create(t, StreamSpec{}) // nobody connects
	dev := e.mustDial(t, paired.URL, paired.DeviceToken)
	svc := e.mustDial(t, paired.URL, paired.ServiceToken)
	waiting := e.mustDial(t, half.URL, half.ServiceToken)

	if err := e.relay.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*stream.Conn{dev, svc, waiting} {
		var ce *stream.CloseError
		if err := readErr(t, c); !errors.As(err, &ce) || ce.Code != closeGoingAway {
			t.Fatalf("after Close: %v, want CloseError 1001", err)
		}
	}
	if _, err := e.relay.Create(StreamSpec{Hub: "h", DeviceID: "d", Name: "s"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Create after Close: %v", err)
	}
	if st := e.relay.Stats(); st.Pending+st.Active != 0 || st.Total != 3 {
		t.Fatalf("Stats after Close = %+v", st)
	}
	if err := e.relay.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}

func TestSubprotocolEcho(t *testing.T) {
	e := newEnv(t, Config{})
	tk := e.create(t, StreamSpec{})
	for _, tt := range []struct {
		offer []string
		want  string
		token string
	}{
		{[]string{"MQTT"}, "MQTT", tk.DeviceToken},
		{nil, "", tk.ServiceToken},
	} {
		c, err := stream.Dial(context.Background(), tk.URL, tt.token, stream.DialOptions{TLSConfig: e.tlsConfig(), Subprotocols: tt.offer})
		if err != nil {
			t.Fatal(err)
		}
		if c.Subprotocol() != tt.want {
			t.Errorf("offered %q, got %q, want %q", tt.offer, c.Subprotocol(), tt.want)
		}
		c.Close()
	}
}

// The resource id carries the hub's name, not the first label of its host
// name (an IP-literal hub would otherwise be "IOTHUBS/127").
func TestEventResourceIDUsesHubName(t *testing.T) {
	for _, tc := range []struct {
		spec StreamSpec
		want string
	}{
		{StreamSpec{Hub: "127.0.0.1", HubName: "lab-hub"}, "/IOTHUBS/LAB-HUB"},
		{StreamSpec{Hub: "myhub.azure-devices.net", HubName: "other"}, "/IOTHUBS/OTHER"},
		{StreamSpec{Hub: "myhub.azure-devices.net"}, "/IOTHUBS/MYHUB"},
	} {
		e := newEnv(t, Config{})
		e.create(t, tc.spec)
		recs := e.events.records(t)
		if len(recs) != 1 || !strings.HasSuffix(recs[0].ResourceID, tc.want) {
			t.Errorf("spec %+v: records %+v, want resource id ending %s", tc.spec, recs, tc.want)
		}
	}
}

func TestEventShape(t *testing.T) {
	e := newEnv(t, Config{})
	e.create(t, StreamSpec{Hub: "myhub.azure-devices.net", DeviceID: "dev1", ModuleID: "m", Name: "ssh", Policy: "iothubowner"})
	recs := e.events.records(t)
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	if r.Category != "DeviceStreams" || r.OperationName != "requested" || r.Level != "Information" ||
		!strings.HasSuffix(r.ResourceID, "/IOTHUBS/MYHUB") || r.DurationMs != "0" {
		t.Fatalf("record %+v", r)
	}
	if _, err := time.Parse(time.RFC3339Nano, r.Time); err != nil {
		t.Fatalf("time %q: %v", r.Time, err)
	}
	var p recordProps
	if err := json.Unmarshal([]byte(r.Properties), &p); err != nil {
		t.Fatalf("properties %q: %v", r.Properties, err)
	}
	if p.DeviceID != "dev1" || p.ModuleID != "m" || p.RequestName != "ssh" || p.Direction != "c2d" || p.StreamID == "" || p.Policy != "iothubowner" {
		t.Fatalf("properties %+v", p)
	}
	if strings.Contains(r.Properties, "token") {
		t.Fatal("event mentions a token")
	}
}

// Open lists each live stream with the policy (skn) that requested it.
func TestOpenNamesRequestingPolicy(t *testing.T) {
	e := newEnv(t, Config{})
	tk1 := e.create(t, StreamSpec{DeviceID: "dev1", Name: "ssh", Policy: "service"})
	e.create(t, StreamSpec{DeviceID: "dev2", ModuleID: "m", Name: "web", Policy: "iothubowner"})
	e.create(t, StreamSpec{DeviceID: "dev3", Name: "raw"})
	got := map[string]OpenStream{}
	for _, o := range e.relay.Open() {
		got[o.DeviceID] = o
	}
	tests := []struct{ id, dev, mod, name, policy string }{
		{tk1.ID, "dev1", "", "ssh", "service"},
		{"", "dev2", "m", "web", "iothubowner"},
		{"", "dev3", "", "raw", ""},
	}
	if len(got) != len(tests) {
		t.Fatalf("Open() = %+v, want %d streams", got, len(tests))
	}
	for _, w := range tests {
		g, ok := got[w.dev]
		if !ok || (w.id != "" && g.ID != w.id) || g.ModuleID != w.mod || g.Name != w.name || g.Policy != w.policy {
			t.Errorf("stream of %s = %+v, want %+v", w.dev, g, w)
		}
	}
}
