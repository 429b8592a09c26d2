package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/provision"
	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/retry/retrytest"
	"github.com/porthole-iot/porthole/sdk/service"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// Network conditions the test dialer simulates.
const (
	netUp      = "up"       // everything reaches the sim
	netDNS     = "dns"      // every name fails to resolve
	netRefused = "refused"  // every connection is refused (a closed port)
	netClock   = "clock"    // servers present a certificate that starts tomorrow
	netDPSDown = "dps-down" // DPS refused, hubs reachable
)

// netSwitch is the agent's base dialer (Options.DialContext) with a
// switchable network condition.
type netSwitch struct {
	sim        *hubsimtest.Sim
	closedAddr string          // a loopback port nobody listens on
	futureAddr string          // a TLS server with a not-yet-valid certificate
	dpsHosts   map[string]bool // DPS host names, lower case

	mu    sync.Mutex
	mode  string         // guarded by mu
	dials map[string]int // dials per host; guarded by mu
}

func newNetSwitch(t *testing.T, sim *hubsimtest.Sim, mode string) *netSwitch {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	future := futureTLS(t, append([]string{sim.DPSHostName, hostOnly(sim.GlobalEndpoint)}, sim.HubHostNames...))
	return &netSwitch{
		sim: sim, closedAddr: closed, futureAddr: tlsServer(t, future), mode: mode, dials: map[string]int{},
		dpsHosts: map[string]bool{strings.ToLower(sim.DPSHostName): true, strings.ToLower(hostOnly(sim.GlobalEndpoint)): true},
	}
}

// tlsServer accepts connections on loopback and runs the TLS handshake
// with cfg on each (which a device with a wrong clock aborts), until the
// test ends.
func tlsServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by the test: cleanup closes ln and waits
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				_ = tls.Server(c, cfg).Handshake()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

func (n *netSwitch) set(mode string) {
	n.mu.Lock()
	n.mode = mode
	n.mu.Unlock()
}

func (n *netSwitch) dpsDials() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for h, k := range n.dials {
		if n.dpsHosts[h] {
			c += k
		}
	}
	return c
}

func (n *netSwitch) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host := strings.ToLower(hostOnly(addr))
	n.mu.Lock()
	mode := n.mode
	n.dials[host]++
	n.mu.Unlock()
	var d net.Dialer
	switch {
	case mode == netDNS:
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
	case mode == netRefused, mode == netDPSDown && n.dpsHosts[host], addr == n.closedAddr:
		return d.DialContext(ctx, network, n.closedAddr) // a real ECONNREFUSED
	case mode == netClock:
		return d.DialContext(ctx, network, n.futureAddr)
	default:
		return n.sim.DialContext(ctx, network, addr)
	}
}

// futureTLS is a server config whose certificate becomes valid tomorrow:
// to the device that is the same as a clock that is behind (a board without
// a battery-backed clock boots in 1970 until NTP sets the time).
func futureTLS(t *testing.T, names []string) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "not yet valid"},
		NotBefore:    time.Now().Add(24 * time.Hour),
		NotAfter:     time.Now().Add(48 * time.Hour),
		DNSNames:     names,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// jsonLine is one line of the agent's JSON log.
type jsonLine struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
	Err   string `json:"err"`
	Hint  string `json:"hint"`
}

func parseLog(t *testing.T, s string) []jsonLine {
	t.Helper()
	var out []jsonLine
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		var j jsonLine
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, j)
	}
	return out
}

// atLeastInfo keeps the lines at info level or above.
func atLeastInfo(ls []jsonLine) []jsonLine {
	var out []jsonLine
	for _, l := range ls {
		if l.Level != "DEBUG" {
			out = append(out, l)
		}
	}
	return out
}

func countMsg(ls []jsonLine, sub string) int {
	n := 0
	for _, l := range ls {
		if strings.Contains(l.Msg, sub) {
			n++
		}
	}
	return n
}

func msgs(ls []jsonLine) string {
	var b strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&b, "  %s %s err=%q\n", l.Level, l.Msg, l.Err)
	}
	return b.String()
}

// simAgent is one Run of the real agent (sdk/dps, sdk/iothub) against a
// hubsim it reaches through a netSwitch, on a fake clock.
type simAgent struct {
	t     *testing.T
	sock  string
	clock *retrytest.Clock
	logs  *syncBuf
	sigs  chan os.Signal
	done  chan error
	// lastNext is the next attempt the previous round waited for.
	lastNext time.Time
}

// newDPSClient is a DPS service client for the sim; the caller closes it.
func newDPSClient(t *testing.T, sim *hubsimtest.Sim) *service.DPSClient {
	t.Helper()
	dpsc, err := service.NewDPS(service.Config{RootCAs: sim.CAPool, DialContext: sim.DialContext, ConnectionString: sim.DPSConnectionString()})
	if err != nil {
		t.Fatal(err)
	}
	return dpsc
}

// outageSim skips in -short mode and starts a sim; it returns the sim, a
// context for the test's setup calls and the sim's first hub.
func outageSim(t *testing.T) (*hubsimtest.Sim, context.Context, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test")
	}
	sim := hubsimtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	t.Cleanup(cancel)
	return sim, ctx, sim.HubHostNames[0]
}

// enrollDev1 enrolls dev1 (symmetric key) on hub and writes an agent
// config for it (extra appended); it returns the config path and the state
// directory.
func enrollDev1(t *testing.T, ctx context.Context, sim *hubsimtest.Sim, hub, extra string) (cfgPath, stateDir string) {
	t.Helper()
	dpsc := newDPSClient(t, sim)
	defer dpsc.Close()
	key := hubsimtest.NewKey(t)
	if _, err := dpsc.PutEnrollment(ctx, service.IndividualEnrollment{
		RegistrationID: "dev1",
		Attestation: &service.AttestationMechanism{Type: service.AttestationSymmetricKey,
			SymmetricKey: &service.SymmetricKeyAttestation{PrimaryKey: key, SecondaryKey: hubsimtest.NewKey(t)}},
		IoTHubHostName: hub,
	}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stateDir = filepath.Join(dir, "state")
	cfgPath = filepath.Join(dir, "agent.yaml")
	y := fmt.Sprintf(`provisioning:
  global_endpoint: %s
  id_scope: %s
  registration_id: dev1
  attestation:
    type: symmetric_key
    symmetric_key: %s
ca_file: %s
state_dir: %s
log:
  level: debug
  format: json
%s`, sim.GlobalEndpoint, sim.IDScope, key, sim.CAFile, stateDir, extra)
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, stateDir
}

func startSimAgent(t *testing.T, cfgPath, stateDir string, n *netSwitch, lookupFirst bool) *simAgent {
	t.Helper()
	a := &simAgent{
		t: t, sock: SocketPath(stateDir), clock: retrytest.NewClock(time.Now()),
		logs: &syncBuf{}, sigs: make(chan os.Signal, 1), done: make(chan error, 1),
	}
	ready := make(chan struct{})
	go func() {
		a.done <- Run(context.Background(), Options{ConfigPath: cfgPath, Log: a.logs, Version: "outage", Signals: a.sigs,
			DialContext: n.dial, Clock: a.clock, LookupFirst: lookupFirst, Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-a.done:
		t.Fatalf("Run: %v\n%s", err, a.logs.String())
	}
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			t.Log(a.logs.String())
		}
	})
	return a
}

// stop sends SIGTERM and checks Run returns nil; later calls do nothing.
func (a *simAgent) stop() {
	a.t.Helper()
	select {
	case a.sigs <- syscall.SIGTERM:
	default:
	}
	if err := <-a.done; err != nil {
		a.t.Errorf("Run returned %v after SIGTERM", err)
	}
	a.done <- nil
}

// running fails the test if Run has returned.
func (a *simAgent) running() {
	a.t.Helper()
	select {
	case err := <-a.done:
		a.done <- err
		a.t.Fatalf("Run returned %v during an outage", err)
	default:
	}
}

func (a *simAgent) status() *Status {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := Query(ctx, a.sock, VerbStatus)
	if err != nil {
		a.t.Fatalf("status: %v", err)
	}
	return r.Status
}

// nextWait waits for the agent's next retry wait: a later next attempt in
// the status than the previous wait's, with its timer pending on the fake
// clock. It returns that status.
func (a *simAgent) nextWait() *Status {
	a.t.Helper()
	var st *Status
	testwait.For(a.t, 30*time.Second, "the agent's next retry wait", func() (bool, string) {
		a.running()
		st = a.status()
		if !st.NextAttempt.After(a.lastNext) {
			return false, fmt.Sprintf("next attempt %v, the previous wait's %v", st.NextAttempt, a.lastNext)
		}
		for _, at := range a.clock.Deadlines() {
			if at.Equal(st.NextAttempt) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("next attempt %v, no timer for it among %v", st.NextAttempt, a.clock.Deadlines())
	})
	a.lastNext = st.NextAttempt
	return st
}

// endWait lets the fake clock run to the end of the wait st announced
// (other timers, such as the health reporter's retries, may fire on the
// way).
func (a *simAgent) endWait(st *Status) {
	a.clock.Advance(st.NextAttempt.Sub(a.clock.Now()))
}

// round waits for the agent's next retry wait, checks the status, and
// lets the fake clock run to the end of the wait.
func (a *simAgent) round(check func(*Status)) {
	a.t.Helper()
	st := a.nextWait()
	check(st)
	a.endWait(st)
}

// pumpUntil lets the fake clock run past every short wait (backoff, DPS
// polling) until ok says the status is right. Long timers (the hub
// client's token renewal) are left alone.
func (a *simAgent) pumpUntil(what string, ok func(*Status) bool) *Status {
	a.t.Helper()
	var st *Status
	testwait.For(a.t, 40*time.Second, what, func() (bool, string) {
		if st = a.status(); ok(st) {
			return true, ""
		}
		a.running()
		if d := a.clock.Deadlines(); len(d) > 0 {
			if left := d[0].Sub(a.clock.Now()); left <= 10*time.Minute {
				a.clock.Advance(left)
			}
		}
		return false, fmt.Sprintf("%+v", st)
	})
	return st
}

// warnings keeps the lines at warning level or above.
func warnings(ls []jsonLine) []jsonLine {
	var out []jsonLine
	for _, l := range ls {
		if l.Level == "WARN" || l.Level == "ERROR" {
			out = append(out, l)
		}
	}
	return out
}

func connectedTo(hub string) func(*Status) bool {
	return func(s *Status) bool { return s.Connected && s.AssignedHub == hub }
}

// The agent boots without a usable network (names do not resolve; the DPS
// port is closed; the clock is behind so certificates are not yet valid):
// it keeps running through several backoff rounds, logs one line when DPS
// starts failing (with a clock hint where it applies) and one when DPS is
// reachable again, keeps the retries at debug level, and reports the phase,
// the failing step and the last error. Then the network comes up and the
// agent registers and connects without a restart.
func TestOutageAtBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	const rounds = 4
	for _, tc := range []struct {
		mode    string
		wantErr string // in the status's last error
	}{
		{netDNS, "no such host"},
		{netRefused, "connection refused"},
		{netClock, "is before"}, // crypto/x509: "current time … is before …"
	} {
		t.Run(tc.mode, func(t *testing.T) {
			sim, ctx, hub := outageSim(t)
			cfgPath, stateDir := enrollDev1(t, ctx, sim, hub, "")
			n := newNetSwitch(t, sim, tc.mode)
			a := startSimAgent(t, cfgPath, stateDir, n, false)

			var quietFrom int // Info+ lines logged up to the first backoff wait
			for i := 1; i <= rounds; i++ {
				a.round(func(st *Status) {
					if st.Phase != provision.PhaseWaiting || st.Connected || st.Provisioned || st.Failing != provision.StepDPS ||
						st.Attempts != i || !strings.Contains(st.LastError, tc.wantErr) || st.LastErrorAt.IsZero() {
						t.Fatalf("round %d: status %+v", i, st)
					}
					if wantHint := tc.mode == netClock; (st.Hint != "") != wantHint {
						t.Fatalf("round %d: hint %q", i, st.Hint)
					}
				})
				if i == 1 {
					quietFrom = len(atLeastInfo(parseLog(t, a.logs.String())))
				}
			}
			lines := parseLog(t, a.logs.String())
			// Quiet, but for one paced reminder once the outage is a
			// minute old (the jittered waits may add up to that).
			var extra []jsonLine
			reminders := 0
			for _, l := range atLeastInfo(lines)[quietFrom:] {
				if l.Msg == "still failing; retrying" {
					reminders++
					continue
				}
				extra = append(extra, l)
			}
			if len(extra) != 0 || reminders > 1 {
				t.Errorf("%d more rounds logged at info level or above:\n%s", rounds-1, msgs(atLeastInfo(lines)[quietFrom:]))
			}
			// The last round's Advance may already have led to one more.
			if n := countMsg(lines, "still failing; retrying"); n < rounds-1 {
				t.Errorf("%d debug retry lines, want at least %d", n, rounds-1)
			}

			n.set(netUp)
			st := a.pumpUntil("connected", connectedTo(hub))
			if st.Failing != "" || st.Hint != "" || st.Registrations != 1 || st.Phase != provision.PhaseConnected {
				t.Errorf("after recovery: %+v", st)
			}
			lines = atLeastInfo(parseLog(t, a.logs.String()))
			warns := warnings(lines)
			if len(warns) != 1 || !strings.Contains(warns[0].Msg, "registration with DPS failing") || !strings.Contains(warns[0].Err, tc.wantErr) {
				t.Errorf("warnings, want one for DPS failing:\n%s", msgs(warns))
			}
			if hinted := len(warns) == 1 && strings.Contains(warns[0].Hint, "check the system clock"); hinted != (tc.mode == netClock) {
				t.Errorf("clock hint %q in mode %s", warns, tc.mode)
			}
			if k := countMsg(lines, "DPS reachable again"); k != 1 {
				t.Errorf("%d recovery lines:\n%s", k, msgs(lines))
			}
		})
	}
}

// A device with a cached assignment: with DPS down it connects to the
// cached hub without DPS (and with -lookup-first right after the failed
// lookup); with the clock behind it retries the hub with one hinted line
// and connects once certificates check out.
func TestOutageWithCachedAssignment(t *testing.T) {
	sim, ctx, hub := outageSim(t)
	cfgPath, stateDir := enrollDev1(t, ctx, sim, hub, "")

	// First boot, network up: register and cache the assignment.
	n := newNetSwitch(t, sim, netUp)
	first := startSimAgent(t, cfgPath, stateDir, n, false)
	first.pumpUntil("connected", connectedTo(hub))
	first.stop()

	for _, tc := range []struct {
		name        string
		mode        string
		lookupFirst bool
		rounds      int    // backoff rounds before the network is fixed
		warn        string // the one warning
		dps         bool   // whether DPS is dialled
	}{
		{"dps down", netDPSDown, false, 0, "", false},
		{"dps down, lookup first", netDPSDown, true, 0, "DPS lookup failing; trying the cached hub", true},
		{"clock behind", netClock, false, 3, "cannot connect to the hub", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNetSwitch(t, sim, tc.mode)
			a := startSimAgent(t, cfgPath, stateDir, n, tc.lookupFirst)
			for i := 1; i <= tc.rounds; i++ {
				a.round(func(st *Status) {
					if st.Phase != provision.PhaseWaiting || st.Connected || st.Failing != provision.StepHub || st.Attempts != i ||
						!strings.Contains(st.LastError, "is before") || !strings.Contains(st.Hint, "clock") || st.AssignedHub != hub {
						t.Fatalf("round %d: status %+v", i, st)
					}
				})
			}
			if tc.mode == netClock {
				n.set(netUp) // the clock is right again; DPS stays down in the others
			}
			st := a.pumpUntil("connected", connectedTo(hub))
			if st.Registrations != 0 || st.Failing != "" || st.Hint != "" {
				t.Errorf("status %+v", st)
			}
			if got := n.dpsDials() > 0; got != tc.dps {
				t.Errorf("DPS dialled %d times", n.dpsDials())
			}
			lines := atLeastInfo(parseLog(t, a.logs.String()))
			warns := warnings(lines)
			switch {
			case tc.warn == "" && len(warns) != 0,
				tc.warn != "" && (len(warns) != 1 || !strings.Contains(warns[0].Msg, tc.warn)):
				t.Errorf("warnings, want %q:\n%s", tc.warn, msgs(warns))
			}
			if tc.mode == netClock {
				if len(warns) != 1 || !strings.Contains(warns[0].Hint, "check the system clock") {
					t.Errorf("no clock hint:\n%s", msgs(warns))
				}
				if k := countMsg(lines, "hub reachable again"); k != 1 {
					t.Errorf("%d recovery lines:\n%s", k, msgs(lines))
				}
			}
			a.stop()
		})
	}
}

// The hub drops the agent while the network is down: the hub client
// reconnects by itself through several backoff rounds; the status says
// "reconnecting" with the reason; the log has one line for the loss and one
// for the recovery (the client's per-attempt lines are at debug level);
// the flow neither registers nor looks the device up.
func TestOutageHubLost(t *testing.T) {
	sim, ctx, hub := outageSim(t)
	cfgPath, stateDir := enrollDev1(t, ctx, sim, hub, "")
	n := newNetSwitch(t, sim, netUp)
	a := startSimAgent(t, cfgPath, stateDir, n, false)
	a.pumpUntil("connected", connectedTo(hub))
	dpsDials := n.dpsDials()

	n.set(netRefused)
	if !sim.Hub(hub).Disconnect("dev1", "") {
		t.Fatal("the sim did not know the device's connection")
	}
	testwait.For(t, 20*time.Second, "the agent reconnecting", func() (bool, string) {
		st := a.status()
		return st.Phase == provision.PhaseReconnecting, fmt.Sprintf("%+v", st)
	})
	const rounds = 3
	var quietFrom int
	for i := 1; i <= rounds; i++ {
		a.round(func(st *Status) {
			if st.Phase != provision.PhaseReconnecting || st.Connected || st.LastError == "" || st.AssignedHub != hub {
				t.Fatalf("round %d: status %+v", i, st)
			}
			// The status shows the outage as a failing hub, with the
			// time of the client's next attempt.
			if st.Failing != provision.StepHub || st.FailingSince.IsZero() || st.NextAttempt.IsZero() || st.Attempts != i-1 {
				t.Fatalf("round %d: failing %q since %v, %d attempts, next %v", i, st.Failing, st.FailingSince, st.Attempts, st.NextAttempt)
			}
		})
		if i == 1 {
			quietFrom = len(atLeastInfo(parseLog(t, a.logs.String())))
		}
	}
	// The last round ended with an attempt that fails: wait for the wait
	// after it before reading the log.
	last := a.nextWait()
	lines := parseLog(t, a.logs.String())
	// Rounds are quiet, but for a paced reminder once the outage is a
	// minute old (the jittered waits may add up to that).
	var extra []jsonLine
	for _, l := range atLeastInfo(lines)[quietFrom:] {
		if l.Msg != "hub still unreachable; retrying" {
			extra = append(extra, l)
		}
	}
	if len(extra) != 0 || countMsg(lines, "hub still unreachable; retrying") > 1 {
		t.Errorf("reconnect rounds logged at info level or above:\n%s", msgs(atLeastInfo(lines)[quietFrom:]))
	}
	if k := countMsg(lines, "reconnect failed"); k < rounds {
		t.Errorf("%d debug lines for failed reconnects, want at least %d", k, rounds)
	}
	// One line right after the loss says the agent retries, and when.
	if k := countMsg(atLeastInfo(lines), "retrying the hub connection"); k != 1 {
		t.Errorf("%d lines saying the agent retries the hub, want 1:\n%s", k, msgs(atLeastInfo(lines)))
	}

	n.set(netUp)
	a.endWait(last)
	st := a.pumpUntil("reconnected", func(s *Status) bool { return s.Connected })
	if st.Phase != provision.PhaseConnected || st.Registrations != 1 {
		t.Errorf("after reconnecting: %+v", st)
	}
	lines = atLeastInfo(parseLog(t, a.logs.String()))
	warns := warnings(lines)
	if len(warns) != 1 || !strings.Contains(warns[0].Msg, "hub connection lost") {
		t.Errorf("warnings, want one for the loss:\n%s", msgs(warns))
	}
	testwait.For(t, 20*time.Second, "one line for the recovery", func() (bool, string) {
		lines := atLeastInfo(parseLog(t, a.logs.String()))
		return countMsg(lines, "hub connection restored") == 1, msgs(lines)
	})
	if n.dpsDials() != dpsDials {
		t.Errorf("DPS dialled during a hub reconnect")
	}
}

// A resolve entry sends DPS to a closed port: the agent keeps retrying with
// one log line; the operator fixes the entry and sends SIGHUP; the agent
// registers and connects without a restart.
func TestOutageResolveToClosedPort(t *testing.T) {
	sim, ctx, hub := outageSim(t)
	n := newNetSwitch(t, sim, netUp)
	resolveTo := func(addr string) string { return fmt.Sprintf("resolve:\n  - %s:443=%s\n", sim.GlobalEndpoint, addr) }
	cfgPath, stateDir := enrollDev1(t, ctx, sim, hub, resolveTo(n.closedAddr))
	a := startSimAgent(t, cfgPath, stateDir, n, false)
	for i := 1; i <= 3; i++ {
		a.round(func(st *Status) {
			if st.Phase != provision.PhaseWaiting || st.Failing != provision.StepDPS || st.Attempts != i ||
				!strings.Contains(st.LastError, "connection refused") {
				t.Fatalf("round %d: status %+v", i, st)
			}
		})
	}

	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	fixed := strings.Replace(string(data), resolveTo(n.closedAddr), resolveTo(sim.HTTPSAddr), 1)
	if err := os.WriteFile(cfgPath, []byte(fixed), 0o600); err != nil {
		t.Fatal(err)
	}
	a.sigs <- syscall.SIGHUP
	st := a.pumpUntil("connected", connectedTo(hub))
	if st.Registrations != 1 || st.Failing != "" || st.LastReload == nil || st.LastReload.Error != "" {
		t.Errorf("status %+v", st)
	}
	lines := atLeastInfo(parseLog(t, a.logs.String()))
	warns := warnings(lines)
	if len(warns) != 1 || !strings.Contains(warns[0].Msg, "registration with DPS failing") {
		t.Errorf("warnings, want one for DPS failing:\n%s", msgs(warns))
	}
}
