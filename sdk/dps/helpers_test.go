package dps

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-iot/porthole/sdk/auth"
	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/retry/retrytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testScope = "0ne00000TST"
	testRegID = "dev-1"
)

// testKey is a valid base64 key ("porthole test key of 32 bytes!!!").
var testKey = base64.StdEncoding.EncodeToString([]byte("porthole test key of 32 bytes!!!"))

var testNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// instantClock is a retry.Clock whose timers fire at once; it records every
// wait asked for and moves its time by it, so tests see the exact waits
// without sleeping.
type instantClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func newInstantClock() *instantClock { return &instantClock{now: testNow} }

func (c *instantClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *instantClock) NewTimer(d time.Duration) retry.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return firedTimer{ch}
}

func (c *instantClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

type firedTimer struct{ ch chan time.Time }

func (t firedTimer) C() <-chan time.Time { return t.ch }
func (t firedTimer) Stop() bool          { return false }

// exactPolicy retries without jitter: 429 waits exactly Retry-After and
// backoff waits exactly MinBackoff (Rand 0).
func exactPolicy(clk retry.Clock) retry.Policy {
	return retry.Policy{Clock: clk, RetryAfterJitter: -1, Rand: func() float64 { return 0 }}
}

// fakeDPS is an httptest TLS server scripted by a handler; it records the
// requests it saw.
type fakeDPS struct {
	srv *httptest.Server
	mu  sync.Mutex
	log []seenRequest
}

type seenRequest struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
	HasClientCert          bool
}

func newFakeDPS(t *testing.T, h func(w http.ResponseWriter, r *http.Request, n int)) *fakeDPS {
	t.Helper()
	f := &fakeDPS{}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		n := len(f.log)
		f.log = append(f.log, seenRequest{
			Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
			Header: r.Header.Clone(), Body: b,
			HasClientCert: r.TLS != nil && len(r.TLS.PeerCertificates) > 0,
		})
		f.mu.Unlock()
		h(w, r, n)
	}))
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected in some tests
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeDPS) requests() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.log...)
}

// config returns a Config that reaches the fake over HTTPS with a
// symmetric key.
func (f *fakeDPS) config(clk retry.Clock) Config {
	pool := f.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	return Config{
		GlobalEndpoint: f.srv.Listener.Addr().String(),
		IDScope:        testScope,
		RegistrationID: testRegID,
		SymmetricKey:   testKey,
		RootCAs:        pool,
		Retry:          exactPolicy(clk),
		Now:            func() time.Time { return testNow },
	}
}

func mustNew(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// pendingRegister is a Register running in a goroutine that the test
// cancels; wctx bounds the whole exchange (30 s).
type pendingRegister struct {
	cancel context.CancelFunc // cancels Register's context
	errc   chan error         // Register's result
	wctx   context.Context
}

// registerUntilWait starts c.Register in a goroutine and waits until it
// sleeps on clk; it returns that wait's length and WaitTimer's error. The
// goroutine is the test's: cancelAndWait (or the test's cleanup) stops it.
func registerUntilWait(t *testing.T, c *Client, clk *retrytest.Clock) (*pendingRegister, time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(wcancel)
	p := &pendingRegister{cancel: cancel, errc: make(chan error, 1), wctx: wctx}
	go func() {
		_, err := c.Register(ctx, nil)
		p.errc <- err
	}()
	left, err := clk.WaitTimer(wctx)
	return p, left, err
}

// cancelAndWait cancels Register and fails the test unless it returns
// context.Canceled before wctx ends.
func (p *pendingRegister) cancelAndWait(t *testing.T) {
	t.Helper()
	p.cancel()
	select {
	case err := <-p.errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err %v", err)
		}
	case <-p.wctx.Done():
		t.Fatal("Register did not return after cancel")
	}
}

// reply writes a DPS-style JSON answer.
func reply(w http.ResponseWriter, status int, retryAfter string, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if retryAfter != "" {
		w.Header().Set("retry-after", retryAfter)
	}
	w.WriteHeader(status)
	switch b := body.(type) {
	case string:
		_, _ = io.WriteString(w, b)
	case nil:
	default:
		_ = json.NewEncoder(w).Encode(b)
	}
}

func assigning(opID string) map[string]any {
	return map[string]any{"operationId": opID, "status": "assigning"}
}

func assigned(opID string, extra map[string]any) map[string]any {
	st := map[string]any{
		"registrationId":         testRegID,
		"createdDateTimeUtc":     "2025-03-04T05:06:07.1234567Z",
		"assignedHub":            "hub-eu.example",
		"deviceId":               testRegID,
		"status":                 "assigned",
		"substatus":              "initialAssignment",
		"lastUpdatedDateTimeUtc": "2025-03-04T05:06:08.5Z",
		"etag":                   `"abc"`,
	}
	for k, v := range extra {
		st[k] = v
	}
	return map[string]any{"operationId": opID, "status": "assigned", "registrationState": st}
}

// verifySAS checks a DPS token the way the service does: HMAC over the sr
// as sent, skn=registration, resource scope/registrations/id.
func verifySAS(t *testing.T, tok string) {
	t.Helper()
	p, err := auth.ParseToken(tok)
	if err != nil {
		t.Fatalf("Authorization %q: %v", auth.Redact(tok), err)
	}
	if p.Resource != testScope+"/registrations/"+testRegID || p.KeyName != "registration" {
		t.Errorf("token resource %q skn %q", p.Resource, p.KeyName)
	}
	key, _ := base64.StdEncoding.DecodeString(testKey)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(p.StringToSign()))
	if want := base64.StdEncoding.EncodeToString(m.Sum(nil)); want != p.Sig {
		t.Error("token signature does not verify")
	}
	if !p.Expiry.After(testNow) {
		t.Errorf("token expiry %v not after now", p.Expiry)
	}
}
