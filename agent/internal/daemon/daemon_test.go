package daemon

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-iot/porthole/agent/internal/bridge"
	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/agent/internal/provision"
	"github.com/porthole-iot/porthole/sdk/health"
	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/retry/retrytest"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testKey = "UkVQTEFDRS1NRS1XSVRILVRIRS1ERVZJQ0UtS0VZISE="

// fakeDPS assigns the hub named by next.
type fakeDPS struct {
	b     *fakeBackend
	regID string
}

func (f fakeDPS) Register(ctx context.Context, payload json.RawMessage) (provision.Assignment, error) {
	f.b.mu.Lock()
	defer f.b.mu.Unlock()
	if f.b.regErr != nil {
		return provision.Assignment{}, f.b.regErr
	}
	f.b.registers = append(f.b.registers, f.regID)
	return provision.Assignment{AssignedHub: f.b.next, DeviceID: f.regID, Status: provision.StatusAssigned, Substatus: "initialAssignment"}, nil
}

func (f fakeDPS) Lookup(ctx context.Context) (provision.Assignment, error) {
	return provision.Assignment{}, errors.New("unexpected lookup")
}

type fakeHub struct {
	hub     string
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	methods map[string]methodHandler // guarded by mu
	patches []any                    // guarded by mu
	stream  func(context.Context, bridge.Request)
	state   func(connected bool, err error) // the daemon's connection-state hook
	// retrying is the daemon's reconnect-wait hook.
	retrying func(err error, wait time.Duration)
}

func (h *fakeHub) Done() <-chan struct{} { return h.done }
func (h *fakeHub) Err() error            { return nil }
func (h *fakeHub) Close()                { h.once.Do(func() { close(h.done) }) }
func (h *fakeHub) UpdateReported(ctx context.Context, patch any) error {
	h.mu.Lock()
	h.patches = append(h.patches, patch)
	h.mu.Unlock()
	return nil
}
func (h *fakeHub) OnMethod(name string, m methodHandler) {
	h.mu.Lock()
	h.methods[name] = m
	h.mu.Unlock()
}
func (h *fakeHub) method(name string) methodHandler {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.methods[name]
}

type fakeBackend struct {
	mu        sync.Mutex
	next      string     // hub the next registration assigns; guarded by mu
	regErr    error      // if non-nil, registrations fail with it; guarded by mu
	registers []string   // registration IDs registered; guarded by mu
	newDPS    int        // NewDPS calls; guarded by mu
	hubs      []*fakeHub // guarded by mu
	dialed    chan *fakeHub
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{next: "hub-a.local", dialed: make(chan *fakeHub, 100)}
}

func (b *fakeBackend) NewDPS(cfg *config.Config, dial dialFunc, log *slog.Logger) (provision.DPS, string, error) {
	b.mu.Lock()
	b.newDPS++
	b.mu.Unlock()
	if cfg.Provisioning.RegistrationID == "refuse-me" {
		return nil, "", errors.New("dps: unusable settings")
	}
	return fakeDPS{b: b, regID: cfg.Provisioning.RegistrationID}, cfg.Provisioning.RegistrationID, nil
}

func (b *fakeBackend) DialHub(ctx context.Context, cfg *config.Config, a provision.Assignment, dial dialFunc, hooks hubHooks, log *slog.Logger) (hubConn, error) {
	h := &fakeHub{hub: a.AssignedHub, done: make(chan struct{}), methods: map[string]methodHandler{}, stream: hooks.Stream, state: hooks.State, retrying: hooks.Retrying}
	for n, m := range hooks.Methods {
		h.methods[n] = m
	}
	b.mu.Lock()
	b.hubs = append(b.hubs, h)
	b.mu.Unlock()
	b.dialed <- h
	return h, nil
}

func (b *fakeBackend) setNext(hub string) {
	b.mu.Lock()
	b.next = hub
	b.mu.Unlock()
}

func (b *fakeBackend) registered() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.registers...)
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type agent struct {
	t       *testing.T
	dir     string
	cfgPath string
	backend *fakeBackend
	sigs    chan os.Signal
	logs    *syncBuf
	done    chan error
	sock    string
}

func writeConfig(t *testing.T, path, stateDir, extra string) {
	t.Helper()
	writeConfigID(t, path, stateDir, "dev1", extra)
}

func writeConfigID(t *testing.T, path, stateDir, regID, extra string) {
	t.Helper()
	y := fmt.Sprintf(`provisioning:
  id_scope: 0ne00000001
  registration_id: %s
  attestation:
    type: symmetric_key
    symmetric_key: %s
state_dir: %s
%s`, regID, testKey, stateDir, extra)
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startAgent runs the daemon with a fake backend until the test ends.
func startAgent(t *testing.T, extra string) *agent {
	t.Helper()
	return startAgentGrace(t, extra, 0)
}

func startAgentGrace(t *testing.T, extra string, grace time.Duration) *agent {
	t.Helper()
	return startAgentWith(t, extra, grace, context.Background(), nil, nil)
}

// startAgentWith runs the daemon on ctx, with backend b (nil: a new fake)
// and mod applied to the options.
func startAgentWith(t *testing.T, extra string, grace time.Duration, ctx context.Context, b *fakeBackend, mod func(*Options)) *agent {
	t.Helper()
	if b == nil {
		b = newFakeBackend()
	}
	dir := t.TempDir()
	a := &agent{
		t: t, dir: dir, cfgPath: filepath.Join(dir, "agent.yaml"), backend: b,
		sigs: make(chan os.Signal, 1), logs: &syncBuf{}, done: make(chan error, 1),
		sock: SocketPath(filepath.Join(dir, "state")),
	}
	writeConfig(t, a.cfgPath, filepath.Join(dir, "state"), extra)
	ready := make(chan struct{})
	opts := Options{
		ConfigPath: a.cfgPath, Log: a.logs, Version: "test", Signals: a.sigs, GracePeriod: grace,
		Ready: func() { close(ready) }, backend: a.backend,
	}
	if mod != nil {
		mod(&opts)
	}
	go func() { a.done <- Run(ctx, opts) }()
	select {
	case <-ready:
	case err := <-a.done:
		t.Fatalf("Run: %v\n%s", err, a.logs.String())
	}
	t.Cleanup(func() {
		a.stop()
		t.Log(a.logs.String())
	})
	return a
}

func (a *agent) stop() {
	select {
	case a.sigs <- syscall.SIGTERM:
	default:
	}
	if err := <-a.done; err != nil {
		a.t.Errorf("Run returned %v after SIGTERM", err)
	}
	a.done <- nil // later stops see a clean exit
}

func (a *agent) query(verb string) *Reply {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := Query(ctx, a.sock, verb)
	if err != nil {
		a.t.Fatalf("%s: %v", verb, err)
	}
	return r
}

func (a *agent) hub() *fakeHub {
	a.t.Helper()
	select {
	case h := <-a.backend.dialed:
		return h
	case <-time.After(20 * time.Second):
		a.t.Fatal("no hub connection")
		return nil
	}
}

// waitStatus polls the status verb until ok says it is right.
func (a *agent) waitStatus(what string, ok func(*Status) bool) *Status {
	a.t.Helper()
	var st *Status
	testwait.For(a.t, 20*time.Second, "the status to show "+what, func() (bool, string) {
		st = a.query(VerbStatus).Status
		return ok(st), fmt.Sprintf("%+v", st)
	})
	return st
}

func TestRunStatusStop(t *testing.T) {
	a := startAgent(t, "")
	h := a.hub()
	if h.hub != "hub-a.local" {
		t.Fatalf("dialled %q", h.hub)
	}
	st := a.waitStatus("connected", func(s *Status) bool { return s.Connected })
	if st.AssignedHub != "hub-a.local" || st.DeviceID != "dev1" || !st.Provisioned || st.Registrations != 1 || st.Version != "test" || st.RegistrationID != "dev1" {
		t.Errorf("status %+v", st)
	}
	fi, err := os.Stat(a.sock)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %04o, want 0600", perm)
	}
	// The health report follows the connection (sdk/health's shape).
	testwait.For(t, 20*time.Second, "the health report in the twin", func() (bool, string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.patches) == 0 {
			return false, "no patch"
		}
		b, _ := json.Marshal(h.patches[len(h.patches)-1])
		var rep map[string]any
		json.Unmarshal(b, &rep)
		r, ok, err := health.FromTwin(rep)
		return ok && err == nil && r.Provisioning.Hub == "hub-a.local" && r.Provisioning.Substatus == "initialAssignment" &&
			r.Version == "test" && r.Hub.Connected, string(b)
	})
	if r, err := Query(context.Background(), a.sock, "dance"); err == nil || r.Error == "" {
		t.Errorf("unknown verb accepted: %+v", r)
	}

	a.stop()
	select {
	case <-h.done:
	default:
		t.Error("hub connection left open after stop")
	}
	if _, err := os.Stat(a.sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

func TestSecondAgentRefused(t *testing.T) {
	a := startAgent(t, "")
	a.hub()
	err := Run(context.Background(), Options{ConfigPath: a.cfgPath, Log: &syncBuf{}, Signals: make(chan os.Signal), backend: newFakeBackend()})
	if err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Fatalf("second Run: %v", err)
	}
}

func TestBadConfigFailsStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	os.WriteFile(path, []byte("provisioning:\n  id_scope: x\n"), 0o600)
	err := Run(context.Background(), Options{ConfigPath: path, Log: &syncBuf{}, backend: newFakeBackend()})
	if err == nil || !strings.Contains(err.Error(), "registration_id") {
		t.Fatalf("Run = %v", err)
	}
}

func TestReprovisionVerbMoves(t *testing.T) {
	a := startAgent(t, "")
	ha := a.hub()
	a.backend.setNext("hub-b.local")
	r := a.query(VerbReprovision)
	if r.Assignment == nil || r.Assignment.AssignedHub != "hub-b.local" {
		t.Fatalf("reply %+v", r)
	}
	hb := a.hub()
	if hb.hub != "hub-b.local" {
		t.Fatalf("moved to %q", hb.hub)
	}
	<-ha.done
	a.waitStatus("hub-b", func(s *Status) bool { return s.AssignedHub == "hub-b.local" && s.Connected && s.Registrations == 2 })
}

func TestReprovisionMethod(t *testing.T) {
	a := startAgent(t, "hub:\n  reprovision_method: moveit\n")
	ha := a.hub()
	m := ha.method("moveit")
	if m == nil {
		t.Fatal("method not installed")
	}
	a.backend.setNext("hub-b.local")
	code, body := m(context.Background(), nil)
	if code != 200 {
		t.Fatalf("method answered %d %v", code, body)
	}
	if hb := a.hub(); hb.hub != "hub-b.local" {
		t.Fatalf("moved to %q", hb.hub)
	}
	if got := a.backend.registered(); len(got) != 2 {
		t.Fatalf("registrations %v", got)
	}
}

func TestReloadLiveAndRefused(t *testing.T) {
	a := startAgent(t, "")
	h := a.hub()
	a.waitStatus("connected", func(s *Status) bool { return s.Connected })
	sighup := func() *ReloadOutcome {
		prev := a.query(VerbStatus).Status.LastReload
		a.sigs <- syscall.SIGHUP
		return a.waitStatus("reload", func(s *Status) bool {
			return s.LastReload != nil && (prev == nil || s.LastReload.At.After(prev.At))
		}).LastReload
	}

	// Live: stream policy, log level and method name.
	writeConfig(t, a.cfgPath, filepath.Join(a.dir, "state"), "streams:\n  max_concurrent: 3\nlog:\n  level: debug\nhub:\n  reprovision_method: other\n")
	lr := sighup()
	if lr.Error != "" || !strings.Contains(lr.Applied, "streams.max_concurrent") || !strings.Contains(lr.Applied, "log.level") {
		t.Fatalf("reload %+v", lr)
	}
	if h.method("other") == nil {
		t.Error("renamed method not installed on the live connection")
	}
	if code, _ := h.method("reprovision")(context.Background(), nil); code != 404 {
		t.Errorf("old method name answered %d", code)
	}

	// A broken file is refused; the agent keeps running.
	os.WriteFile(a.cfgPath, []byte("provisioning: [\n"), 0o600)
	if lr := sighup(); lr.Error == "" {
		t.Fatalf("broken config accepted: %+v", lr)
	}
	// A change that needs a restart is refused.
	writeConfig(t, a.cfgPath, filepath.Join(a.dir, "elsewhere"), "")
	if lr := sighup(); !strings.Contains(lr.Error, "state_dir") {
		t.Fatalf("state_dir change: %+v", lr)
	}
	select {
	case h2 := <-a.backend.dialed:
		t.Fatalf("reconnected to %q on a live-only reload", h2.hub)
	default:
	}
	if st := a.query(VerbStatus).Status; !st.Connected {
		t.Errorf("status after reloads %+v", st)
	}
	if got := a.backend.registered(); len(got) != 1 {
		t.Errorf("registrations %v", got)
	}
}

func TestReloadIdentityRegistersAgain(t *testing.T) {
	a := startAgent(t, "")
	ha := a.hub()
	a.backend.setNext("hub-b.local")
	writeConfigID(t, a.cfgPath, filepath.Join(a.dir, "state"), "dev2", "")
	a.sigs <- syscall.SIGHUP
	hb := a.hub()
	if hb.hub != "hub-b.local" {
		t.Fatalf("after identity change connected to %q", hb.hub)
	}
	<-ha.done
	if got := a.backend.registered(); len(got) != 2 || got[1] != "dev2" {
		t.Fatalf("registrations %v", got)
	}
	a.waitStatus("dev2", func(s *Status) bool { return s.RegistrationID == "dev2" && s.Connected })
}

func TestReloadTransportReconnectsWithCache(t *testing.T) {
	a := startAgent(t, "")
	ha := a.hub()
	writeConfig(t, a.cfgPath, filepath.Join(a.dir, "state"), "hub:\n  keepalive: 60s\n")
	a.sigs <- syscall.SIGHUP
	hb := a.hub()
	if hb.hub != "hub-a.local" {
		t.Fatalf("reconnected to %q", hb.hub)
	}
	<-ha.done
	if got := a.backend.registered(); len(got) != 1 {
		t.Fatalf("a reconnect-only change registered again: %v", got)
	}
}

// pipeRequest is a stream request whose Accept returns one end of a pipe.
type pipeRequest struct{ device, service net.Conn }

func newPipeRequest() *pipeRequest {
	d, s := net.Pipe()
	return &pipeRequest{device: d, service: s}
}

func (r *pipeRequest) Name() string                             { return "ssh" }
func (r *pipeRequest) Accept(context.Context) (net.Conn, error) { return r.device, nil }
func (r *pipeRequest) Reject(context.Context) error             { return errors.New("unexpected reject") }

func openStream(t *testing.T, h *fakeHub) net.Conn {
	t.Helper()
	r := newPipeRequest()
	h.stream(context.Background(), r)
	if _, err := r.service.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(r.service, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q %v", buf, err)
	}
	return r.service
}

func TestSIGTERMDrainsStreams(t *testing.T) {
	a := startAgent(t, "streams:\n  targets:\n    ssh: "+echoTarget(t)+"\n")
	h := a.hub()
	svc := openStream(t, h)
	a.sigs <- syscall.SIGTERM
	// While draining, the open stream keeps working and Run waits.
	if _, err := svc.Write([]byte("more")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(svc, buf); err != nil || string(buf) != "more" {
		t.Fatalf("echo while draining %q %v", buf, err)
	}
	select {
	case err := <-a.done:
		t.Fatalf("Run returned (%v) with a stream open", err)
	default:
	}
	svc.Close()
	if err := <-a.done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	a.done <- nil
	if !strings.Contains(a.logs.String(), "to_target=8") {
		t.Errorf("no stream close line:\n%s", a.logs.String())
	}
}

func TestSIGTERMCutsAfterGrace(t *testing.T) {
	a := startAgentGrace(t, "streams:\n  targets:\n    ssh: "+echoTarget(t)+"\n", 50*time.Millisecond)
	h := a.hub()
	svc := openStream(t, h)
	a.sigs <- syscall.SIGTERM
	if err := <-a.done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	a.done <- nil
	if _, err := svc.Read(make([]byte, 1)); err == nil {
		t.Fatal("stream still open after the grace period")
	}
	if !strings.Contains(a.logs.String(), "streams cut at shutdown") {
		t.Errorf("log:\n%s", a.logs.String())
	}
}

func FuzzControlRequest(f *testing.F) {
	for _, s := range []string{`{"verb":"status"}`, `{"verb":"reprovision"}`, `{}`, `{"verb":1}`, `[`, "", `{"verb":"status","x":[1,2]}`, "\x00"} {
		f.Add([]byte(s))
	}
	s := &controlServer{ctx: context.Background(), handle: func(_ context.Context, verb string) Reply {
		return Reply{Error: "verb " + verb}
	}}
	f.Fuzz(func(t *testing.T, line []byte) {
		r := s.answer(line)
		if r.Error == "" {
			t.Fatalf("no error for %q", line)
		}
		var req Request
		if json.Unmarshal(line, &req) == nil && req.Verb != "" && r.Error != "verb "+req.Verb {
			t.Fatalf("%q answered %q", line, r.Error)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLogToFile(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "agent.log")
	a := startAgent(t, "log:\n  destination: file\n  file: "+logFile+"\n")
	a.hub()
	a.stop()
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "porthole agent starting") || !strings.Contains(string(data), "porthole agent stopped") {
		t.Fatalf("log file:\n%s", data)
	}
	if fi, _ := os.Stat(logFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("log file mode %04o", fi.Mode().Perm())
	}
}

func TestReloadAllOrNothing(t *testing.T) {
	a := startAgent(t, "")
	a.hub()
	a.waitStatus("connected", func(s *Status) bool { return s.Connected })
	// A new identity whose DPS client cannot be built, plus a live change:
	// neither may apply.
	writeConfigID(t, a.cfgPath, filepath.Join(a.dir, "state"), "refuse-me", "log:\n  level: debug\n")
	a.sigs <- syscall.SIGHUP
	st := a.waitStatus("reload", func(s *Status) bool { return s.LastReload != nil })
	if !strings.Contains(st.LastReload.Error, "unusable settings") || st.RegistrationID != "dev1" {
		t.Fatalf("status %+v, reload %+v", st, st.LastReload)
	}
	if strings.Contains(a.logs.String(), "level=DEBUG") {
		t.Error("log level changed by a refused reload")
	}
	select {
	case h := <-a.backend.dialed:
		t.Fatalf("reconnected to %q after a refused reload", h.hub)
	default:
	}
}

// While the hub client re-establishes its link by itself, the status says
// "reconnecting" (not connected) with the reason as the last error; the log
// has one line for the loss and one for the recovery.
func TestStatusReconnecting(t *testing.T) {
	a := startAgent(t, "")
	h := a.hub()
	st := a.waitStatus("connected", func(s *Status) bool { return s.Connected })
	if st.Phase != provision.PhaseConnected || st.LastError != "" {
		t.Fatalf("status %+v", st)
	}
	lost := fmt.Errorf("pingresp not received: %w", syscall.ECONNRESET)
	h.state(false, lost)
	st = a.query(VerbStatus).Status
	if st.Phase != provision.PhaseReconnecting || st.Connected || !strings.Contains(st.LastError, "pingresp not received") ||
		st.LastErrorAt.IsZero() || st.AssignedHub != "hub-a.local" || !st.Provisioned {
		t.Fatalf("while reconnecting: %+v", st)
	}
	// The client announces its wait: the status shows the next attempt.
	before := time.Now()
	h.retrying(lost, 40*time.Second)
	st = a.query(VerbStatus).Status
	if at := st.NextAttempt; at.Before(before.Add(40*time.Second)) || at.After(time.Now().Add(40*time.Second)) {
		t.Fatalf("next attempt %v, want 40 s after %v", at, before)
	}
	// Reconnected: the loss is history.
	h.state(true, nil)
	st = a.query(VerbStatus).Status
	if st.Phase != provision.PhaseConnected || !st.Connected || st.LastError != "" || !st.NextAttempt.IsZero() {
		t.Fatalf("after reconnecting: %+v", st)
	}
	logs := a.logs.String()
	if n := strings.Count(logs, "hub connection lost"); n != 1 {
		t.Errorf("%d loss lines:\n%s", n, logs)
	}
	if n := strings.Count(logs, "hub connection restored"); n != 1 {
		t.Errorf("%d recovery lines:\n%s", n, logs)
	}
	select {
	case h2 := <-a.backend.dialed:
		t.Fatalf("the daemon dialled %q while the client was reconnecting by itself", h2.hub)
	default:
	}
}

func TestSDKLoggerDemotesRetryLines(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l := sdkLogger(base).With("device", "dev1")
	l.Info("reconnecting", "wait", time.Second)
	l.Warn("reconnect failed", "err", "refused")
	l.Info("dps: retrying")
	l.Info("connected", "host", "hub")
	l.Warn("malformed twin response")
	out := buf.String()
	for _, gone := range []string{"reconnecting", "reconnect failed", "dps: retrying"} {
		if strings.Contains(out, gone) {
			t.Errorf("%q logged at info level:\n%s", gone, out)
		}
	}
	if !strings.Contains(out, "msg=connected") || !strings.Contains(out, "malformed twin response") || !strings.Contains(out, "device=dev1") {
		t.Errorf("other lines lost:\n%s", out)
	}

	buf.Reset()
	debug := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sdkLogger(debug).WithGroup("g").Warn("reconnect failed", "err", "refused")
	if !strings.Contains(buf.String(), "level=DEBUG") || !strings.Contains(buf.String(), "reconnect failed") {
		t.Errorf("at debug level: %s", buf.String())
	}
}

// Errors that no retry would fix by itself (DPS refusing the key, a server
// the device does not trust) do not end the agent either: it keeps
// retrying with backoff, so that fixing the enrollment or the CA on the
// service side is enough. Run returns nil once its context ends.
func TestNeverExitsOnPermanentErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"dps refuses the key", &retry.StatusError{Code: 401}},
		{"unknown authority", fmt.Errorf("tls: %w", x509.UnknownAuthorityError{})},
		{"disabled enrollment", fmt.Errorf("registration %w", provision.ErrNotAssigned)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newFakeBackend()
			b.regErr = tc.err
			clock := retrytest.NewClock(time.Now())
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a := startAgentWith(t, "", 0, ctx, b, func(o *Options) { o.Clock = clock })
			for i := 1; i <= 5; i++ {
				wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
				d, err := clock.WaitTimer(wctx)
				wcancel()
				if err != nil {
					t.Fatalf("round %d: no backoff wait: %v", i, err)
				}
				select {
				case err := <-a.done:
					t.Fatalf("Run returned %v", err)
				default:
				}
				st := a.query(VerbStatus).Status
				if st.Failing != provision.StepDPS || st.Attempts != i || st.LastError == "" {
					t.Fatalf("round %d: status %+v", i, st)
				}
				// The status says when the next attempt comes.
				if want := clock.Now().Add(d); st.Phase != provision.PhaseWaiting || !st.NextAttempt.Equal(want) {
					t.Fatalf("round %d: phase %s, next attempt %v, want waiting until %v", i, st.Phase, st.NextAttempt, want)
				}
				clock.Advance(d)
			}
			cancel()
			if err := <-a.done; err != nil {
				t.Fatalf("Run after cancel = %v", err)
			}
			a.done <- nil
			if n := strings.Count(a.logs.String(), "level=WARN"); n != 1 {
				t.Errorf("%d warnings for one outage:\n%s", n, a.logs.String())
			}
		})
	}
}
