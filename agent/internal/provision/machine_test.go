package provision

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/retry"
)

// Errors the transition table feeds the machine.
var (
	err503     = &retry.StatusError{Code: 503}
	err429     = &retry.StatusError{Code: 429, RetryAfter: 11 * time.Second, HasRetryAfter: true}
	errRefused = fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
	errReset   = fmt.Errorf("read: %w", syscall.ECONNRESET)
	errGaveUp  = &retry.GiveUpError{Attempts: 90, Elapsed: 15 * time.Minute, Err: syscall.ECONNREFUSED}
)

func answer(a Assignment, err error) func(int) (Assignment, error) {
	return func(int) (Assignment, error) { return a, err }
}

// machineEnv is a Machine on the fake clock with synchronous fakes: the
// table drives it step by step from the test goroutine, as a simulator
// would (no goroutine, no sleep).
type machineEnv struct {
	*env
	p *Provisioner
	m *Machine
}

func newMachine(t *testing.T, seed bool, rand float64, tune func(*Config)) *machineEnv {
	e := newEnv(t)
	if seed {
		e.seed("hub-a.local")
	}
	cfg := e.config()
	cfg.Retry.Rand = func() float64 { return rand }
	if tune != nil {
		tune(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &machineEnv{env: e, p: p, m: p.NewMachine()}
}

// serving brings the machine from a cached hub-a to StateServe.
func (e *machineEnv) serving(t *testing.T) {
	t.Helper()
	if s := e.m.Start(); s != StateConnect {
		t.Fatalf("start: %v", s)
	}
	if s := e.m.Step(context.Background()); s != StateServe {
		t.Fatalf("connect: %v", s)
	}
}

// Every transition of the flow, one row each (the table in doc.go).
func TestTransitions(t *testing.T) {
	jitter := 0.5 // half of each jitter span
	for _, tc := range []struct {
		name string
		seed bool // a cached assignment for hub-a
		tune func(*Config)
		// register, lookup: DPS's answers; fail: Connect errors per hub.
		register, lookup func(int) (Assignment, error)
		fail             map[string]error
		// act brings the machine to the transition under test and makes it.
		act func(t *testing.T, e *machineEnv) State
		// want is the state reached; for StateWait, resume and delay too.
		want   State
		resume State
		delay  time.Duration
		check  func(t *testing.T, e *machineEnv)
	}{
		{name: "start: no cache → register", act: start, want: StateRegister},
		{name: "start: cache → connect", seed: true, act: start, want: StateConnect},
		{name: "start: cache, lookup_first → lookup", seed: true, tune: func(c *Config) { c.LookupFirst = true }, act: start, want: StateLookup},
		{name: "start: reload changed registration → register", seed: true, tune: func(c *Config) { c.ForceRegister = true }, act: start, want: StateRegister},

		{name: "register ok → connect", register: answer(assigned("hub-b.local"), nil), act: startStep, want: StateConnect,
			check: func(t *testing.T, e *machineEnv) { wantHub(t, e, "hub-b.local") }},
		{name: "register 429 → wait Retry-After (+ jitter) → register", register: answer(Assignment{}, err429), act: startStep,
			want: StateWait, resume: StateRegister, delay: 11*time.Second + 500*time.Millisecond},
		{name: "register 5xx → wait ≥ 5 s → register", register: answer(Assignment{}, err503), act: startStep,
			want: StateWait, resume: StateRegister, delay: 7500 * time.Millisecond}, // U[5 s, 10 s] at 0.5
		{name: "register not assigned → wait → register", register: answer(Assignment{Status: "failed"}, nil), act: startStep,
			want: StateWait, resume: StateRegister, delay: 7500 * time.Millisecond},
		{name: "register 401 (permanent) → wait → register: a daemon never gives up", register: answer(Assignment{}, &retry.StatusError{Code: 401}), act: startStep,
			want: StateWait, resume: StateRegister, delay: 7500 * time.Millisecond},
		{name: "reprovision fails while connected → serve, session kept", seed: true, register: answer(Assignment{}, err503),
			act: func(t *testing.T, e *machineEnv) State {
				e.serving(t)
				e.m.Reprovision()
				return e.m.Step(context.Background())
			},
			want: StateServe, check: sessionKept},
		{name: "reprovision, same hub → serve, session kept", seed: true, register: answer(assigned("hub-a.local"), nil),
			act: func(t *testing.T, e *machineEnv) State {
				e.serving(t)
				e.m.Reprovision()
				return e.m.Step(context.Background())
			},
			want: StateServe, check: sessionKept},
		{name: "reprovision, other hub → connect, old session closed", seed: true, register: answer(assigned("hub-b.local"), nil),
			act: func(t *testing.T, e *machineEnv) State {
				e.serving(t)
				s := e.m.Session().(*fakeSession)
				e.m.Reprovision()
				next := e.m.Step(context.Background())
				recv(t, s.closed, "old session closed")
				return next
			},
			want: StateConnect, check: func(t *testing.T, e *machineEnv) { wantHub(t, e, "hub-b.local") }},

		{name: "lookup: same hub → connect", seed: true, tune: lookupFirst, lookup: answer(assigned("hub-a.local"), nil), act: startStep, want: StateConnect},
		{name: "lookup: elsewhere → connect there, no registration", seed: true, tune: lookupFirst, lookup: answer(assigned("hub-b.local"), nil), act: startStep,
			want: StateConnect, check: func(t *testing.T, e *machineEnv) { wantHub(t, e, "hub-b.local"); wantCalls(t, e, 0, 1) }},
		{name: "lookup: not assigned → register", seed: true, tune: lookupFirst, lookup: answer(Assignment{Status: "unassigned"}, nil), act: startStep, want: StateRegister},
		{name: "lookup: 404 → register", seed: true, tune: lookupFirst, lookup: answer(Assignment{}, &retry.StatusError{Code: 404}), act: startStep, want: StateRegister},
		{name: "lookup: DPS down → cached hub at once", seed: true, tune: lookupFirst, lookup: answer(Assignment{}, err503), act: startStep,
			want: StateConnect, check: func(t *testing.T, e *machineEnv) { wantHub(t, e, "hub-a.local") }},

		{name: "connect ok → serve", seed: true, act: startStep, want: StateServe},
		{name: "connect 401 → register", seed: true, fail: map[string]error{"hub-a.local": &retry.StatusError{Code: 401}}, act: startStep, want: StateRegister},
		{name: "connect 403 → register", seed: true, fail: map[string]error{"hub-a.local": &retry.StatusError{Code: 403}}, act: startStep, want: StateRegister},
		{name: "connect 404 → register", seed: true, fail: map[string]error{"hub-a.local": &retry.StatusError{Code: 404}}, act: startStep, want: StateRegister},
		{name: "connect refused by the hub (CONNACK) → register", seed: true, fail: map[string]error{"hub-a.local": fmt.Errorf("connack 5: %w", ErrHubRefused)}, act: startStep, want: StateRegister},
		{name: "connect 400 (no refusal) → wait → same hub", seed: true, fail: map[string]error{"hub-a.local": &retry.StatusError{Code: 400}}, act: startStep,
			want: StateWait, resume: StateConnect, delay: 7500 * time.Millisecond},
		{name: "connect 5xx → wait ≥ 5 s → same hub", seed: true, fail: map[string]error{"hub-a.local": err503}, act: startStep,
			want: StateWait, resume: StateConnect, delay: 7500 * time.Millisecond},
		{name: "connect 429 → wait Retry-After (+ jitter) → same hub", seed: true, fail: map[string]error{"hub-a.local": err429}, act: startStep,
			want: StateWait, resume: StateConnect, delay: 11*time.Second + 500*time.Millisecond},
		{name: "connect network error → wait → same hub", seed: true, fail: map[string]error{"hub-a.local": errRefused}, act: startStep,
			want: StateWait, resume: StateConnect, delay: 7500 * time.Millisecond},
		{name: "connect failing for 15 min → lookup", seed: true, fail: map[string]error{"hub-a.local": errRefused},
			act: func(t *testing.T, e *machineEnv) State {
				var waited, last time.Duration
				for s := startStep(t, e); s == StateWait; s = e.m.Step(context.Background()) {
					last = e.m.Delay()
					waited += last
					e.clock.Advance(last)
					e.m.WaitOver()
				}
				if waited < 15*time.Minute || waited-last >= 15*time.Minute {
					t.Errorf("went to DPS after %v of waits (the last %v), want the attempt that reaches 15 min", waited, last)
				}
				return e.m.State()
			},
			want: StateLookup},
		{name: "connect failing, window shortened by a reload → lookup", seed: true, fail: map[string]error{"hub-a.local": errRefused},
			act: func(t *testing.T, e *machineEnv) State {
				startStep(t, e) // waits 7.5 s
				e.m.WaitOver()
				if s := e.m.Step(context.Background()); s != StateWait { // waits 12.5 s
					t.Fatalf("second attempt: %v", s)
				}
				e.m.WaitOver()
				e.p.SetRetryCachedHubFor(15 * time.Second) // SIGHUP with hub.retry_cached_hub_for: 15s
				return e.m.Step(context.Background())
			},
			want: StateLookup},

		{name: "serve: reprovision → register, session up", seed: true,
			act:  func(t *testing.T, e *machineEnv) State { e.serving(t); return e.m.Reprovision() },
			want: StateRegister, check: func(t *testing.T, e *machineEnv) {
				if st := e.p.Status(); st.Phase != PhaseRegistering || !st.Connected {
					t.Errorf("status %+v, want registering while connected", st)
				}
				sessionKept(t, e)
			}},
		{name: "serve: hub refuses → register", seed: true,
			act: func(t *testing.T, e *machineEnv) State {
				e.serving(t)
				return e.m.SessionEnded(fmt.Errorf("kicked: %w", ErrHubRefused))
			},
			want: StateRegister, check: func(t *testing.T, e *machineEnv) {
				if st := e.p.Status(); st.Connected || e.m.Session() != nil {
					t.Errorf("status %+v, want not connected once the session ended", st)
				}
			}},
		{name: "serve: client gave up after the window → lookup", seed: true,
			act:  func(t *testing.T, e *machineEnv) State { e.serving(t); return e.m.SessionEnded(errGaveUp) },
			want: StateLookup},
		{name: "serve: session lost → wait → same hub", seed: true,
			act:  func(t *testing.T, e *machineEnv) State { e.serving(t); return e.m.SessionEnded(errReset) },
			want: StateWait, resume: StateConnect, delay: 7500 * time.Millisecond},

		{name: "wait over → resume", seed: true, fail: map[string]error{"hub-a.local": errRefused},
			act:  func(t *testing.T, e *machineEnv) State { startStep(t, e); return e.m.WaitOver() },
			want: StateConnect},
		{name: "wait cut by a reprovision → register", seed: true, fail: map[string]error{"hub-a.local": errRefused},
			act:  func(t *testing.T, e *machineEnv) State { startStep(t, e); return e.m.Reprovision() },
			want: StateRegister},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newMachine(t, tc.seed, jitter, tc.tune)
			e.dps.register, e.dps.lookup = tc.register, tc.lookup
			for hub, err := range tc.fail {
				e.hubs.setFail(hub, err)
			}
			t.Cleanup(e.m.Close)
			got := tc.act(t, e)
			if got != tc.want || e.m.State() != got {
				t.Fatalf("state %v (machine says %v), want %v", got, e.m.State(), tc.want)
			}
			if tc.want == StateWait {
				if e.m.Resume() != tc.resume || e.m.Delay() != tc.delay {
					t.Fatalf("wait %v then %v, want %v then %v", e.m.Delay(), e.m.Resume(), tc.delay, tc.resume)
				}
				st := e.p.Status()
				if want := e.clock.Now().Add(tc.delay); st.Phase != PhaseWaiting || !st.NextAttempt.Equal(want) {
					t.Fatalf("status %+v, want waiting until %v", st, want)
				}
			} else if !e.p.Status().NextAttempt.IsZero() {
				t.Fatalf("next attempt %v outside a wait", e.p.Status().NextAttempt)
			}
			if tc.check != nil {
				tc.check(t, e)
			}
		})
	}
}

func start(t *testing.T, e *machineEnv) State { return e.m.Start() }

func startStep(t *testing.T, e *machineEnv) State {
	e.m.Start()
	return e.m.Step(context.Background())
}

func lookupFirst(c *Config) { c.LookupFirst = true }

func wantHub(t *testing.T, e *machineEnv, hub string) {
	t.Helper()
	if e.m.Assignment().AssignedHub != hub {
		t.Errorf("assignment %+v, want hub %s", e.m.Assignment(), hub)
	}
	if st := e.cached(); st.AssignedHub != hub {
		t.Errorf("cached hub %q, want %s", st.AssignedHub, hub)
	}
}

func wantCalls(t *testing.T, e *machineEnv, register, lookup int) {
	t.Helper()
	if r, l := e.dps.counts(); r != register || l != lookup {
		t.Errorf("register=%d lookup=%d, want %d and %d", r, l, register, lookup)
	}
}

func sessionKept(t *testing.T, e *machineEnv) {
	t.Helper()
	s, ok := e.m.Session().(*fakeSession)
	if !ok {
		t.Fatal("no session")
	}
	select {
	case <-s.closed:
		t.Error("session closed")
	default:
	}
}

// The waits between failed attempts: at least 5 s, a ceiling doubling per
// failure up to DefaultHubMaxBackoff on the hub (retry's 5 min on DPS),
// full jitter between the floor and the ceiling. rand at its top shows
// the ceilings, at 0 the floor.
func TestHubBackoffSchedule(t *testing.T) {
	const top = 0.9999999999
	s := time.Second
	for _, tc := range []struct {
		name  string
		rand  float64
		dps   bool
		waits []time.Duration
	}{
		{"hub ceilings", top, false, []time.Duration{10 * s, 20 * s, 40 * s, 60 * s, 60 * s, 60 * s}},
		{"hub floor", 0, false, []time.Duration{5 * s, 5 * s, 5 * s, 5 * s, 5 * s}},
		{"hub middle", 0.5, false, []time.Duration{7500 * time.Millisecond, 12500 * time.Millisecond, 22500 * time.Millisecond, 32500 * time.Millisecond, 32500 * time.Millisecond}},
		{"dps ceilings", top, true, []time.Duration{10 * s, 20 * s, 40 * s, 80 * s, 160 * s, 300 * s, 300 * s}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newMachine(t, !tc.dps, tc.rand, nil)
			e.hubs.setFail("hub-a.local", errRefused)
			e.dps.register = answer(Assignment{}, err503)
			e.m.Start()
			for i, want := range tc.waits {
				if s := e.m.Step(context.Background()); s != StateWait {
					t.Fatalf("attempt %d: %v", i+1, s)
				}
				if got := e.m.Delay(); got.Round(time.Millisecond) != want {
					t.Fatalf("wait %d = %v, want %v", i+1, got, want)
				}
				e.clock.Advance(e.m.Delay())
				e.m.WaitOver()
			}
		})
	}
}

// A success resets the backoff: a drop after a healthy session starts
// again at the first step.
func TestBackoffResetsAfterSuccess(t *testing.T) {
	e := newMachine(t, true, 0.9999999999, nil)
	e.hubs.setFail("hub-a.local", errRefused)
	e.m.Start()
	for range 4 {
		e.m.Step(context.Background())
		e.m.WaitOver()
	}
	e.hubs.setFail("hub-a.local", nil)
	if s := e.m.Step(context.Background()); s != StateServe {
		t.Fatalf("state %v", s)
	}
	if s := e.m.SessionEnded(errReset); s != StateWait || e.m.Delay().Round(time.Second) != 10*time.Second {
		t.Fatalf("after a healthy session: %v %v, want a wait of 10 s", s, e.m.Delay())
	}
	e.m.Close()
}

// The machine is cheap: no goroutine, a few hundred bytes. A simulator
// can hold many on one goroutine.
func TestMachineNeedsNoGoroutine(t *testing.T) {
	e := newMachine(t, true, 0, nil)
	e.hubs.setFail("hub-a.local", errRefused)
	e.m.Start()
	for i := range 180 { // attempts at 0 s, 5 s, … 895 s
		if s := e.m.Step(context.Background()); s != StateWait {
			t.Fatalf("step %d: %v", i, s)
		}
		e.clock.Advance(e.m.Delay())
		e.m.WaitOver()
	}
	if s := e.m.Step(context.Background()); s != StateLookup {
		t.Fatalf("attempt at 15 min: %v, want lookup (15-minute rule)", s)
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = e.p.NewMachine() }); allocs > 4 {
		t.Errorf("NewMachine allocates %v times, want ≤ 4", allocs)
	}
}

// A step whose context ended stops the machine.
func TestStepAfterCancelStops(t *testing.T) {
	e := newMachine(t, true, 0, nil)
	e.hubs.setFail("hub-a.local", context.Canceled)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.m.Start()
	if s := e.m.Step(ctx); s != StateStopped {
		t.Fatalf("state %v", s)
	}
	if err := e.p.Status().LastError; err != "" {
		t.Fatalf("a cancelled attempt recorded an error: %s", err)
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatal("context not cancelled")
	}
}
