package provision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/porthole-iot/porthole/sdk/retry"
)

// State is a state of the provisioning flow; the package documentation
// has the transition table.
type State uint8

const (
	// StateRegister registers with DPS (Config.DPS.Register).
	StateRegister State = iota + 1
	// StateLookup asks DPS where the device is assigned (Config.DPS.Lookup).
	StateLookup
	// StateConnect opens a session on the current hub (Config.Connect).
	StateConnect
	// StateServe holds a live session until it ends or a reprovision is
	// requested (the driver reports which: SessionEnded, Reprovision).
	StateServe
	// StateWait waits Delay before the state Resume names (the driver
	// reports the end of the wait with WaitOver, or cuts it short with
	// Reprovision).
	StateWait
	// StateStopped: the context ended during a step; the flow is over.
	StateStopped
)

func (s State) String() string {
	switch s {
	case StateRegister:
		return "register"
	case StateLookup:
		return "lookup"
	case StateConnect:
		return "connect"
	case StateServe:
		return "serve"
	case StateWait:
		return "wait"
	case StateStopped:
		return "stopped"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Machine is one device's provisioning flow as an explicit state machine,
// without a driver: it starts no goroutine and never sleeps. Step runs the
// work of the states that call out (register, lookup, connect: one call
// each to the injected DPS or Connect); in the states that wait (serve,
// wait) the driver waits, on whatever clock it likes, and reports what
// happened. Provisioner.Run is the driver for one real device; a simulator
// can drive many Machines from one goroutine on a virtual clock (fake DPS
// and Connect that answer at once).
//
// A Machine is not safe for concurrent use. Its Provisioner's Status,
// SetRetryCachedHubFor and Reprovision stay safe to call from anywhere;
// reprovision requests reach a Machine only through its driver
// (Provisioner.Run reads them from the Provisioner).
//
// All the flow's data lives in this one struct; every transition goes
// through enter.
type Machine struct {
	p *Provisioner

	state  State
	resume State         // the state after StateWait
	delay  time.Duration // StateWait's length

	cur  Assignment // the assignment in use (cached or fresh)
	sess Session    // the live hub session, nil when none

	hubSched *retry.Schedule // waits between failed hub attempts
	dpsSched *retry.Schedule // waits between failed DPS calls
	// hubFailing says the current hub is failing; hubFailedFor is for how
	// long, counted as the waits between its attempts plus the attempts'
	// own durations (each at most maxAttemptTime), so that a jump of the
	// wall clock (NTP fixing a board that booted in 1970) neither ends
	// the RetryCachedHubFor window early nor stretches it.
	hubFailing   bool
	hubFailedFor time.Duration
	out          outage // the current outage, for the log and the status
}

// NewMachine returns the flow for p, not started (call Start). p must not
// be running (Run drives a Machine of its own).
func (p *Provisioner) NewMachine() *Machine {
	return &Machine{
		p:        p,
		hubSched: p.hubPolicy().NewSchedule(),
		dpsSched: p.cfg.Retry.NewSchedule(),
	}
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Delay is the length of the wait in StateWait (0 in other states).
func (m *Machine) Delay() time.Duration {
	if m.state != StateWait {
		return 0
	}
	return m.delay
}

// Resume is the state StateWait leads to when the wait ends.
func (m *Machine) Resume() State { return m.resume }

// Session returns the live hub session (nil when none).
func (m *Machine) Session() Session { return m.sess }

// Assignment returns the assignment in use.
func (m *Machine) Assignment() Assignment { return m.cur }

// Start loads the cached assignment and picks the first state: register
// without a usable cache or when Config.ForceRegister, lookup when
// Config.LookupFirst, otherwise connect to the cached hub.
func (m *Machine) Start() State {
	p := m.p
	cur, cached := p.loadCached()
	if cached {
		m.cur = cur
		p.setAssignment(cur)
	}
	switch {
	case !cached:
		return m.enter(StateRegister, 0)
	case p.cfg.ForceRegister:
		p.log.Info("registering again: the configuration changed how the device registers")
		return m.enter(StateRegister, 0)
	case p.cfg.LookupFirst:
		return m.enter(StateLookup, 0)
	}
	return m.enter(StateConnect, 0)
}

// Step does the work of the current state when it is register, lookup or
// connect, and moves on. In other states it changes nothing. After the
// context ended, a failing call moves to StateStopped.
func (m *Machine) Step(ctx context.Context) State {
	var next State
	var d time.Duration
	switch m.state {
	case StateRegister:
		next, d = m.register(ctx)
	case StateLookup:
		next, d = m.lookup(ctx)
	case StateConnect:
		next, d = m.connect(ctx)
	default:
		return m.state
	}
	return m.enter(next, d)
}

// WaitOver ends StateWait: the flow goes on with Resume.
func (m *Machine) WaitOver() State {
	if m.state != StateWait {
		return m.state
	}
	return m.enter(m.wait(false))
}

// Reprovision reports a reprovision request in StateServe or StateWait:
// the flow registers next. In other states it changes nothing: a driver
// keeps the request and reports it once the machine serves or waits (Run
// reads requests only then), unless a registration happens first.
func (m *Machine) Reprovision() State {
	switch m.state {
	case StateServe:
		return m.enter(m.serve(true, nil))
	case StateWait:
		return m.enter(m.wait(true))
	}
	return m.state
}

// SessionEnded reports, in StateServe, that the session's Done channel
// closed; err is its Err.
func (m *Machine) SessionEnded(err error) State {
	if m.state != StateServe {
		return m.state
	}
	return m.enter(m.serve(false, err))
}

// Close closes the session, if any (the flow is over).
func (m *Machine) Close() {
	if m.sess != nil {
		m.sess.Close()
		m.sess = nil
	}
}

// enter moves to next, or to StateWait first when d > 0, and publishes the
// phase and the next attempt time.
func (m *Machine) enter(next State, d time.Duration) State {
	p := m.p
	var nextAt time.Time
	if d > 0 {
		m.resume, m.delay = next, d
		next = StateWait
		nextAt = p.clock.Now().Add(d)
	}
	m.state = next
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status.NextAttempt = nextAt
	switch next {
	case StateRegister:
		p.status.Phase = PhaseRegistering
		// A reprovision while connected keeps the session (and says so).
		p.status.Connected = m.sess != nil
	case StateLookup:
		p.status.Phase, p.status.Connected = PhaseLookup, false
	case StateConnect:
		p.status.Phase, p.status.Connected = PhaseConnecting, false
	case StateServe:
		p.status.Phase, p.status.Connected = PhaseConnected, true
	case StateWait:
		p.status.Phase, p.status.Connected = PhaseWaiting, false
	case StateStopped:
		p.status.Phase, p.status.Connected = PhaseStopped, false
	}
	return next
}

// register is StateRegister: one registration. Success moves to the
// assigned hub (keeping the session when the hub is the same); failure
// waits with DPS backoff, or goes back to serving when a session is up.
func (m *Machine) register(ctx context.Context) (State, time.Duration) {
	p := m.p
	a, err := p.register(ctx, m.out.step == StepDPS)
	if err != nil {
		if ctx.Err() != nil {
			return StateStopped, 0
		}
		if m.sess != nil {
			p.log.Warn("registration failed; staying on the current hub", "err", err)
			return StateServe, 0
		}
		wait := nextWait(m.dpsSched, err)
		p.failed(&m.out, StepDPS, "registration with DPS failing", err, "retry_in", wait)
		return StateRegister, wait
	}
	m.dpsSched.Reset()
	p.recovered(&m.out, StepDPS)
	if m.sess != nil && a.sameHub(m.cur) {
		p.log.Info("registered again; assignment unchanged, keeping the session", "hub", a.AssignedHub)
		m.cur = a
		return StateServe, 0
	}
	if m.sess != nil {
		p.log.Info("moving to the newly assigned hub", "from", m.cur.AssignedHub, "to", a.AssignedHub)
		m.Close()
	}
	m.cur = a
	m.hubHealthy()
	return StateConnect, 0
}

// lookup is StateLookup: assigned (here or elsewhere) → connect there;
// not assigned or 404 → register; failing → the cached hub at once, with
// a fresh RetryCachedHubFor window.
func (m *Machine) lookup(ctx context.Context) (State, time.Duration) {
	p := m.p
	a, err := p.cfg.DPS.Lookup(ctx)
	switch {
	case err == nil && a.Valid():
		m.dpsSched.Reset()
		p.recovered(&m.out, StepLookup)
		if !a.sameHub(m.cur) {
			p.log.Info("DPS lookup: the device is assigned elsewhere; moving", "from", m.cur.AssignedHub, "to", a.AssignedHub, "device", a.DeviceID)
			p.save(a, true)
		} else {
			p.save(a, false)
		}
		m.cur = a
		p.setAssignment(a)
		return StateConnect, 0
	case err == nil || isNotFound(err):
		if err == nil {
			err = fmt.Errorf("%w: lookup status %q", ErrNotAssigned, a.Status)
		}
		p.recovered(&m.out, StepLookup)
		p.log.Info("DPS lookup: the device is not assigned; registering", "err", err)
		return StateRegister, 0
	}
	if ctx.Err() != nil {
		return StateStopped, 0
	}
	p.setError(err)
	// The wait grows the DPS backoff for the next lookup; the cached hub
	// is another service and is tried at once.
	nextWait(m.dpsSched, err)
	p.failed(&m.out, StepLookup, "DPS lookup failing; trying the cached hub", err, "hub", m.cur.AssignedHub)
	m.hubFailing, m.hubFailedFor = true, 0 // a fresh window on the cached hub
	return StateConnect, 0
}

// connect is StateConnect: a session → serve; a refusal → register; any
// other failure → retry the hub with backoff, or lookup once the hub has
// failed for RetryCachedHubFor.
func (m *Machine) connect(ctx context.Context) (State, time.Duration) {
	p := m.p
	start := p.clock.Now()
	s, err := p.cfg.Connect(ctx, m.cur)
	m.attempted(start)
	if err != nil {
		if ctx.Err() != nil {
			return StateStopped, 0
		}
		p.setError(err)
		if p.cfg.IsRefusal(err) {
			p.log.Warn("the hub refused the device; registering with DPS again", "hub", m.cur.AssignedHub, "device", m.cur.DeviceID, "err", err)
			return StateRegister, 0
		}
		return m.hubFailed("cannot connect to the hub", err)
	}
	m.sess = s
	m.hubHealthy()
	if m.out.step == StepHub {
		p.recovered(&m.out, StepHub)
	} else {
		p.leave(&m.out, m.out.step) // connected: a failed lookup no longer matters
	}
	p.clearError() // connected: the errors on the way here are history
	// Logged before the status says connected (enter), so that whoever
	// waits for the status sees the line.
	p.log.Info("connected to the hub", "hub", m.cur.AssignedHub, "device", m.cur.DeviceID)
	return StateServe, 0
}

// serve is StateServe's exit: a reprovision request → register (the
// session stays up meanwhile); the session ended → register on a
// refusal, lookup when the client spent the whole window, otherwise the
// hub again with backoff.
func (m *Machine) serve(reprovision bool, err error) (State, time.Duration) {
	p := m.p
	if reprovision {
		return StateRegister, 0
	}
	m.Close()
	if err == nil {
		err = errors.New("hub session ended")
	}
	p.setError(err)
	if p.cfg.IsRefusal(err) {
		p.log.Warn("the hub refused the device; registering with DPS again", "hub", m.cur.AssignedHub, "err", err)
		return StateRegister, 0
	}
	if errors.Is(err, retry.ErrGaveUp) {
		// The client spent its own reconnect budget (the daemon sets it to
		// RetryCachedHubFor): the window is over.
		p.log.Warn("hub kept failing; asking DPS where the device belongs", "hub", m.cur.AssignedHub, "err", err)
		m.hubHealthy()
		return StateLookup, 0
	}
	return m.hubFailed("hub session lost", err)
}

// wait is StateWait's exit: Resume when the wait ran out, register when a
// reprovision request cut it short.
func (m *Machine) wait(reprovision bool) (State, time.Duration) {
	if reprovision {
		return StateRegister, 0
	}
	return m.resume, 0
}

// hubFailed records a retryable hub failure: the hub again after a
// backoff wait, or lookup (at once) when the hub has been failing for
// RetryCachedHubFor.
func (m *Machine) hubFailed(msg string, err error) (State, time.Duration) {
	p := m.p
	m.hubFailing = true
	if window := p.retryWindow(); m.hubFailedFor >= window {
		p.log.Warn("hub kept failing; asking DPS where the device belongs",
			"hub", m.cur.AssignedHub, "for", m.hubFailedFor.Round(time.Second), "err", err)
		m.hubHealthy()
		return StateLookup, 0
	}
	wait := nextWait(m.hubSched, err)
	m.hubFailedFor += wait
	p.failed(&m.out, StepHub, msg, err, "hub", m.cur.AssignedHub, "retry_in", wait)
	return StateConnect, wait
}

// maxAttemptTime bounds what one connection attempt adds to the hub's
// failure window: attempts are bounded by the client's own timeouts (30 s
// in sdk/iothub); a longer reading is a jump of the wall clock.
const maxAttemptTime = 2 * time.Minute

// attempted adds the duration of an attempt that started at start to the
// failure window of a failing hub.
func (m *Machine) attempted(start time.Time) {
	if !m.hubFailing {
		return
	}
	m.hubFailedFor += min(max(m.p.clock.Now().Sub(start), 0), maxAttemptTime)
}

// hubHealthy forgets the hub's failures: a fresh window and backoff.
func (m *Machine) hubHealthy() {
	m.hubFailing, m.hubFailedFor = false, 0
	m.hubSched.Reset()
}
