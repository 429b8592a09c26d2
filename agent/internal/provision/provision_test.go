package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-iot/porthole/agent/internal/state"
	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/retry/retrytest"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var ident = Identity{GlobalEndpoint: "global.dps.local", IDScope: "0ne001", RegistrationID: "dev1", CredentialID: "sha256:aa"}

func assigned(hub string) Assignment {
	return Assignment{AssignedHub: hub, DeviceID: "dev1", Status: StatusAssigned, Substatus: "initialAssignment", ETag: `"e-` + hub + `"`}
}

// fakeDPS answers from functions and counts calls.
type fakeDPS struct {
	mu        sync.Mutex
	registers int
	lookups   int
	payloads  []string
	register  func(n int) (Assignment, error) // n: 1-based call number
	lookup    func(n int) (Assignment, error)
	called    chan string // "register"/"lookup", buffered
}

func newFakeDPS() *fakeDPS { return &fakeDPS{called: make(chan string, 100)} }

func (f *fakeDPS) Register(ctx context.Context, payload json.RawMessage) (Assignment, error) {
	f.mu.Lock()
	f.registers++
	n := f.registers
	f.payloads = append(f.payloads, string(payload))
	fn := f.register
	f.mu.Unlock()
	f.called <- "register"
	if fn == nil {
		return Assignment{}, errors.New("unexpected register")
	}
	return fn(n)
}

func (f *fakeDPS) Lookup(ctx context.Context) (Assignment, error) {
	f.mu.Lock()
	f.lookups++
	n := f.lookups
	fn := f.lookup
	f.mu.Unlock()
	f.called <- "lookup"
	if fn == nil {
		return Assignment{}, errors.New("unexpected lookup")
	}
	return fn(n)
}

func (f *fakeDPS) counts() (reg, look int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.registers, f.lookups
}

// fakeSession ends when end is called.
type fakeSession struct {
	hub    string
	done   chan struct{}
	once   sync.Once
	err    error
	closed chan struct{}
	cOnce  sync.Once
}

func newSession(hub string) *fakeSession {
	return &fakeSession{hub: hub, done: make(chan struct{}), closed: make(chan struct{})}
}

func (s *fakeSession) Done() <-chan struct{} { return s.done }
func (s *fakeSession) Err() error            { return s.err }
func (s *fakeSession) Close() {
	s.cOnce.Do(func() { close(s.closed) })
	s.once.Do(func() { close(s.done) })
}
func (s *fakeSession) end(err error) { s.once.Do(func() { s.err = err; close(s.done) }) }

// hubs is a fake set of hubs: a per-hub connect result.
type hubs struct {
	mu       sync.Mutex
	fail     map[string]error // Connect error per hub; absent = accept
	sessions chan *fakeSession
	attempts chan string
	clock    retry.Clock
	times    []time.Time // of every Connect call
}

func newHubs() *hubs {
	return &hubs{fail: map[string]error{}, sessions: make(chan *fakeSession, 100), attempts: make(chan string, 1000)}
}

func (h *hubs) connect(ctx context.Context, a Assignment) (Session, error) {
	h.mu.Lock()
	err := h.fail[a.AssignedHub]
	if h.clock != nil {
		h.times = append(h.times, h.clock.Now())
	}
	h.mu.Unlock()
	h.attempts <- a.AssignedHub
	if err != nil {
		return nil, err
	}
	s := newSession(a.AssignedHub)
	h.sessions <- s
	return s, nil
}

func (h *hubs) setFail(hub string, err error) {
	h.mu.Lock()
	h.fail[hub] = err
	h.mu.Unlock()
}

type env struct {
	t     *testing.T
	dir   string
	dps   *fakeDPS
	hubs  *hubs
	clock *retrytest.Clock
}

func newEnv(t *testing.T) *env {
	c := retrytest.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	h := newHubs()
	h.clock = c
	return &env{t: t, dir: t.TempDir(), dps: newFakeDPS(), hubs: h, clock: c}
}

func (e *env) store() *state.Store {
	s, err := state.Open(e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) seed(hub string) {
	if err := e.store().Save(state.State{
		GlobalEndpoint: ident.GlobalEndpoint, IDScope: ident.IDScope, RegistrationID: ident.RegistrationID,
		CredentialID: ident.CredentialID, AssignedHub: hub, DeviceID: "dev1", LastRegistered: time.Unix(1, 0).UTC(),
	}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) config() Config {
	return Config{
		Identity: ident,
		DPS:      e.dps,
		Store:    e.store(),
		Connect:  e.hubs.connect,
		Retry:    retry.Policy{Clock: e.clock, Rand: func() float64 { return 0 }},
		Logger:   slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// start runs p until the test ends.
func (e *env) start(p *Provisioner) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			e.t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
}

func (e *env) cached() state.State {
	st, ok, err := e.store().Load()
	if err != nil || !ok {
		e.t.Fatalf("no cached state: ok=%v err=%v", ok, err)
	}
	return st
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestFirstBootRegistersAndCaches(t *testing.T) {
	e := newEnv(t)
	e.dps.register = func(int) (Assignment, error) { return assigned("hub-a.local"), nil }
	cfg := e.config()
	cfg.Payload = json.RawMessage(`{"site":"x"}`)
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.start(p)
	s := recv(t, e.hubs.sessions, "session")
	if s.hub != "hub-a.local" {
		t.Fatalf("connected to %q", s.hub)
	}
	if reg, look := e.dps.counts(); reg != 1 || look != 0 {
		t.Fatalf("register=%d lookup=%d, want 1 and 0", reg, look)
	}
	if e.dps.payloads[0] != `{"site":"x"}` {
		t.Errorf("payload %q", e.dps.payloads[0])
	}
	st := e.cached()
	if st.AssignedHub != "hub-a.local" || st.DeviceID != "dev1" || st.Substatus != "initialAssignment" || st.ETag != `"e-hub-a.local"` {
		t.Errorf("cached %+v", st)
	}
	if !st.Matches(ident.GlobalEndpoint, ident.IDScope, ident.RegistrationID, ident.CredentialID) {
		t.Errorf("cached state does not match the identity: %+v", st)
	}
	if got := p.Status(); got.Assignment.AssignedHub != "hub-a.local" || got.Registrations != 1 {
		t.Errorf("status %+v", got)
	}
}

func TestSecondBootMakesNoRegistration(t *testing.T) {
	e := newEnv(t)
	e.dps.register = func(int) (Assignment, error) { return assigned("hub-a.local"), nil }

	// First boot registers.
	p1, _ := New(e.config())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p1.Run(ctx) }()
	s1 := recv(t, e.hubs.sessions, "first session")
	cancel()
	<-done
	select {
	case <-s1.closed:
	default:
		t.Fatal("Run returned without closing its session")
	}

	// Second boot: cached state, straight to the hub.
	p2, _ := New(e.config())
	e.start(p2)
	s2 := recv(t, e.hubs.sessions, "second session")
	if s2.hub != "hub-a.local" {
		t.Fatalf("second boot connected to %q", s2.hub)
	}
	if reg, look := e.dps.counts(); reg != 1 || look != 0 {
		t.Fatalf("after two boots register=%d lookup=%d, want 1 and 0", reg, look)
	}
}

func TestCacheForAnotherIdentityIsIgnored(t *testing.T) {
	e := newEnv(t)
	if err := e.store().Save(state.State{RegistrationID: "other", AssignedHub: "hub-old.local", DeviceID: "other"}); err != nil {
		t.Fatal(err)
	}
	e.dps.register = func(int) (Assignment, error) { return assigned("hub-a.local"), nil }
	p, _ := New(e.config())
	e.start(p)
	if s := recv(t, e.hubs.sessions, "session"); s.hub != "hub-a.local" {
		t.Fatalf("connected to %q", s.hub)
	}
	if reg, _ := e.dps.counts(); reg != 1 {
		t.Fatalf("register=%d", reg)
	}
}

func TestHubRefusalRegisters(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"ErrHubRefused", fmt.Errorf("connack 5: %w", ErrHubRefused)},
		{"401", &retry.StatusError{Code: 401}},
		{"403", &retry.StatusError{Code: 403}},
		{"404", &retry.StatusError{Code: 404}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.seed("hub-a.local")
			e.hubs.setFail("hub-a.local", tc.err)
			e.dps.register = func(int) (Assignment, error) { return assigned("hub-b.local"), nil }
			p, _ := New(e.config())
			e.start(p)
			if s := recv(t, e.hubs.sessions, "session"); s.hub != "hub-b.local" {
				t.Fatalf("connected to %q", s.hub)
			}
			if reg, look := e.dps.counts(); reg != 1 || look != 0 {
				t.Fatalf("register=%d lookup=%d", reg, look)
			}
			if st := e.cached(); st.AssignedHub != "hub-b.local" {
				t.Fatalf("cached hub %q", st.AssignedHub)
			}
		})
	}
}

func TestSessionRefusedLaterRegisters(t *testing.T) {
	e := newEnv(t)
	e.seed("hub-a.local")
	e.dps.register = func(int) (Assignment, error) { return assigned("hub-b.local"), nil }
	p, _ := New(e.config())
	e.start(p)
	s := recv(t, e.hubs.sessions, "session a")
	e.hubs.setFail("hub-a.local", &retry.StatusError{Code: 401})
	s.end(fmt.Errorf("kicked: %w", ErrHubRefused))
	if s := recv(t, e.hubs.sessions, "session b"); s.hub != "hub-b.local" {
		t.Fatalf("connected to %q", s.hub)
	}
}

func TestLookupFirst(t *testing.T) {
	for _, tc := range []struct {
		name         string
		lookup       func(int) (Assignment, error)
		wantHub      string
		wantRegister int
	}{
		{"same hub", func(int) (Assignment, error) { return assigned("hub-a.local"), nil }, "hub-a.local", 0},
		{"assigned elsewhere", func(int) (Assignment, error) { return assigned("hub-b.local"), nil }, "hub-b.local", 0},
		{"not assigned", func(int) (Assignment, error) { return Assignment{Status: "unassigned"}, nil }, "hub-c.local", 1},
		{"404", func(int) (Assignment, error) { return Assignment{}, &retry.StatusError{Code: 404} }, "hub-c.local", 1},
		{"lookup down: cached hub", func(int) (Assignment, error) { return Assignment{}, syscall.ECONNREFUSED }, "hub-a.local", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.seed("hub-a.local")
			e.dps.lookup = tc.lookup
			e.dps.register = func(int) (Assignment, error) { return assigned("hub-c.local"), nil }
			cfg := e.config()
			cfg.LookupFirst = true
			p, _ := New(cfg)
			e.start(p)
			// A failed lookup goes to the cached hub at once: the DPS
			// backoff is DPS's, the hub is another service.
			if s := recv(t, e.hubs.sessions, "session"); s.hub != tc.wantHub {
				t.Fatalf("connected to %q, want %q", s.hub, tc.wantHub)
			}
			if reg, look := e.dps.counts(); reg != tc.wantRegister || look != 1 {
				t.Fatalf("register=%d lookup=%d, want %d and 1", reg, look, tc.wantRegister)
			}
			if st := e.cached(); st.AssignedHub != tc.wantHub {
				t.Fatalf("cached hub %q, want %q", st.AssignedHub, tc.wantHub)
			}
		})
	}
}

// The cached hub keeps failing with retryable errors: the agent keeps
// retrying it (without DPS) for RetryCachedHubFor, then looks the device
// up, learns it lives elsewhere and moves, still without registering.
func TestRetryCachedHubForThenLookup(t *testing.T) {
	e := newEnv(t)
	e.seed("hub-a.local")
	e.hubs.setFail("hub-a.local", fmt.Errorf("dial: %w", syscall.ECONNREFUSED))
	e.dps.lookup = func(int) (Assignment, error) { return assigned("hub-b.local"), nil }
	p, _ := New(e.config()) // RetryCachedHubFor: default 15 min
	start := e.clock.Now()
	e.start(p)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var session *fakeSession
	var waits int
	for session == nil {
		wctx, wcancel := context.WithCancel(ctx)
		stop, gone := make(chan struct{}), make(chan struct{})
		go func() { // ends when the session arrives or the wait ends
			defer close(gone)
			select {
			case session = <-e.hubs.sessions:
				wcancel()
			case <-stop:
			}
		}()
		d, err := e.clock.WaitTimer(wctx)
		close(stop)
		<-gone
		wcancel()
		if err != nil {
			break // session arrived
		}
		if _, look := e.dps.counts(); look != 0 {
			t.Fatalf("lookup after %v, before the window ended", e.clock.Now().Sub(start))
		}
		waits++
		e.clock.Advance(d)
	}
	if session == nil {
		session = recv(t, e.hubs.sessions, "session")
	}
	if session.hub != "hub-b.local" {
		t.Fatalf("connected to %q", session.hub)
	}
	reg, look := e.dps.counts()
	if reg != 0 || look != 1 {
		t.Fatalf("register=%d lookup=%d, want 0 and 1", reg, look)
	}
	e.hubs.mu.Lock()
	times := e.hubs.times
	e.hubs.mu.Unlock()
	// The last hub-a attempt is the one that hit the window.
	first, last := times[0], times[len(times)-2]
	if got := last.Sub(first); got < 15*time.Minute || got >= 15*time.Minute+5*time.Second {
		t.Fatalf("went to DPS %v after the first failure, want 15 min (+ at most one 5 s backoff)", got)
	}
	if waits < 100 {
		t.Fatalf("only %d waits: backoff too long for 5 s steps", waits)
	}
	if st := e.cached(); st.AssignedHub != "hub-b.local" {
		t.Fatalf("cached hub %q", st.AssignedHub)
	}
}

func TestRetryCachedHubForIsLive(t *testing.T) {
	e := newEnv(t)
	e.seed("hub-a.local")
	e.hubs.setFail("hub-a.local", syscall.ECONNRESET)
	e.dps.lookup = func(int) (Assignment, error) { return assigned("hub-a.local"), nil }
	p, _ := New(e.config())
	p.SetRetryCachedHubFor(10 * time.Second)
	e.start(p)
	// Attempts at 0 s, 5 s, 10 s → lookup after the third.
	for range 2 {
		d, err := e.clock.WaitTimer(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(d)
	}
	if got := recv(t, e.dps.called, "lookup"); got != "lookup" {
		t.Fatalf("DPS call %q", got)
	}
}

func TestManualReprovisionMoves(t *testing.T) {
	e := newEnv(t)
	e.seed("hub-a.local")
	e.dps.register = func(int) (Assignment, error) {
		a := assigned("hub-b.local")
		a.Substatus = "deviceDataMigrated"
		return a, nil
	}
	p, _ := New(e.config())
	e.start(p)
	sa := recv(t, e.hubs.sessions, "session a")
	if sa.hub != "hub-a.local" {
		t.Fatalf("connected to %q", sa.hub)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := p.Reprovision(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	if a.AssignedHub != "hub-b.local" || a.Substatus != "deviceDataMigrated" {
		t.Fatalf("reprovision result %+v", a)
	}
	sb := recv(t, e.hubs.sessions, "session b")
	if sb.hub != "hub-b.local" {
		t.Fatalf("moved to %q", sb.hub)
	}
	recv(t, sa.closed, "old session closed")
	if st := e.cached(); st.AssignedHub != "hub-b.local" || st.Substatus != "deviceDataMigrated" {
		t.Fatalf("cached %+v", st)
	}
}

func TestManualReprovisionSameHubKeepsSession(t *testing.T) {
	e := newEnv(t)
	e.seed("hub-a.local")
	e.dps.register = func(int) (Assignment, error) { return assigned("hub-a.local"), nil }
	p, _ := New(e.config())
	e.start(p)
	sa := recv(t, e.hubs.sessions, "session a")
	p.RequestReprovision("method")
	recv(t, e.dps.called, "register")
	// A second request is served by a second registration, which proves the
	// first one has been handled without dropping the session.
	if _, err := p.Reprovision(context.Background(), "cli"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sa.closed:
		t.Fatal("session closed although the hub did not change")
	default:
	}
	if got := len(e.hubs.attempts); got != 1 {
		t.Fatalf("%d connect attempts, want 1", got)
	}
}

func TestReprovisionFailureKeepsSession(t *testing.T) {
	e := newEnv(t)
	e.seed("hub-a.local")
	e.dps.register = func(int) (Assignment, error) { return Assignment{}, &retry.StatusError{Code: 401} }
	p, _ := New(e.config())
	e.start(p)
	sa := recv(t, e.hubs.sessions, "session a")
	_, err := p.Reprovision(context.Background(), "cli")
	var se *retry.StatusError
	if !errors.As(err, &se) || se.Code != 401 {
		t.Fatalf("err = %v", err)
	}
	// The flow went back to serving the session: another request works.
	if _, err := p.Reprovision(context.Background(), "cli"); err == nil {
		t.Fatal("second reprovision succeeded")
	}
	select {
	case <-sa.closed:
		t.Fatal("session closed after a failed reprovision")
	default:
	}
}

func TestRegistrationRetriesWithBackoff(t *testing.T) {
	e := newEnv(t)
	e.dps.register = func(n int) (Assignment, error) {
		switch n {
		case 1:
			return Assignment{}, &retry.StatusError{Code: 503}
		case 2:
			return Assignment{Status: "failed"}, nil
		}
		return assigned("hub-a.local"), nil
	}
	p, _ := New(e.config())
	e.start(p)
	for i, want := range []time.Duration{5 * time.Second, 5 * time.Second} {
		d, err := e.clock.WaitTimer(context.Background())
		if err != nil || d != want {
			t.Fatalf("wait %d = %v (%v), want %v", i, d, err, want)
		}
		e.clock.Advance(d)
	}
	if s := recv(t, e.hubs.sessions, "session"); s.hub != "hub-a.local" {
		t.Fatalf("connected to %q", s.hub)
	}
	// Connected: the registration failures are history.
	if st := waitConnected(t, p); st.Registrations != 1 || st.LastError != "" || !st.NextAttempt.IsZero() {
		t.Fatalf("status %+v", st)
	}
}

func TestReprovisionAfterRunEnds(t *testing.T) {
	e := newEnv(t)
	e.seed("hub-a.local")
	p, _ := New(e.config())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
	if _, err := p.Reprovision(context.Background(), "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Reprovision = %v", err)
	}
	if err := p.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
}

func TestNewChecksConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New accepted an empty config")
	}
}

func TestSessionGaveUpGoesToLookup(t *testing.T) {
	e := newEnv(t)
	e.seed("hub-a.local")
	e.dps.lookup = func(int) (Assignment, error) { return assigned("hub-b.local"), nil }
	p, _ := New(e.config())
	e.start(p)
	sa := recv(t, e.hubs.sessions, "session a")
	sa.end(&retry.GiveUpError{Attempts: 90, Elapsed: 15 * time.Minute, Err: syscall.ECONNREFUSED})
	if sb := recv(t, e.hubs.sessions, "session b"); sb.hub != "hub-b.local" {
		t.Fatalf("connected to %q", sb.hub)
	}
	if reg, look := e.dps.counts(); reg != 0 || look != 1 {
		t.Fatalf("register=%d lookup=%d, want 0 and 1", reg, look)
	}
}

func TestSessionLostRetriesCachedHub(t *testing.T) {
	e := newEnv(t)
	e.seed("hub-a.local")
	p, _ := New(e.config())
	e.start(p)
	sa := recv(t, e.hubs.sessions, "session a")
	sa.end(fmt.Errorf("lost: %w", syscall.ECONNRESET))
	d, err := e.clock.WaitTimer(context.Background())
	if err != nil || d != 5*time.Second {
		t.Fatalf("wait %v %v", d, err)
	}
	e.clock.Advance(d)
	if s := recv(t, e.hubs.sessions, "session again"); s.hub != "hub-a.local" {
		t.Fatalf("reconnected to %q", s.hub)
	}
	if reg, look := e.dps.counts(); reg != 0 || look != 0 {
		t.Fatalf("register=%d lookup=%d after a transient drop", reg, look)
	}
}

// failingStore is a Store whose Save fails while full is set, the way a
// full disk fails state.Store.
type failingStore struct {
	*state.Store
	mu   sync.Mutex
	full bool // guarded by mu
}

func (s *failingStore) setFull(full bool) {
	s.mu.Lock()
	s.full = full
	s.mu.Unlock()
}

func (s *failingStore) Save(st state.State) error {
	s.mu.Lock()
	full := s.full
	s.mu.Unlock()
	if full {
		return fmt.Errorf("state: save /var/lib/porthole/state.json: write: %w", syscall.ENOSPC)
	}
	return s.Store.Save(st)
}

// A failed save of the assignment shows in the status, also once the
// device is connected (the log may be on the same full disk), and the flow
// keeps running; a later save that works clears it.
func TestSaveFailureShowsInStatus(t *testing.T) {
	e := newEnv(t)
	e.dps.register = func(n int) (Assignment, error) {
		if n == 1 {
			return assigned("hub-a.local"), nil
		}
		return assigned("hub-b.local"), nil
	}
	fs := &failingStore{Store: e.store(), full: true}
	cfg := e.config()
	cfg.Store = fs
	p, _ := New(cfg)
	e.start(p)
	recv(t, e.hubs.sessions, "session a")
	st := waitConnected(t, p)
	if !strings.Contains(st.LastError, "no space left on device") || st.LastErrorAt.IsZero() {
		t.Fatalf("connected status %+v, want the save failure", st)
	}
	fs.setFull(false)
	if _, err := p.Reprovision(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	recv(t, e.hubs.sessions, "session b")
	testwait.For(t, 20*time.Second, "the save error cleared once connected", func() (bool, string) {
		st := p.Status()
		return st.Phase == PhaseConnected && st.Assignment.AssignedHub == "hub-b.local" && st.LastError == "", fmt.Sprintf("%+v", st)
	})
	if got := e.cached(); got.AssignedHub != "hub-b.local" {
		t.Fatalf("cached %q", got.AssignedHub)
	}
}
