package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/agent/internal/state"
	"github.com/porthole-iot/porthole/sdk/retry"
)

// StatusAssigned is the DPS registration status of an assigned device.
// Source: Azure/azure-rest-api-specs specification/deviceprovisioningservices/
// data-plane/DeviceProvisioningServices/device/models.tsp (status enum
// unassigned, assigning, assigned, failed, disabled).
const StatusAssigned = "assigned"

var (
	// ErrHubRefused marks an error from Config.Connect meaning the hub
	// refused the device (bad credentials, unknown or disabled device). Wrap
	// it with %w; the default refusal test also accepts 401/403/404 status
	// errors (retry.StatusCoder).
	ErrHubRefused = errors.New("provision: hub refused the device")
	// ErrNotAssigned means DPS answered but did not assign the device.
	ErrNotAssigned = errors.New("provision: device not assigned")
	// ErrClosed is returned by Reprovision when Run has ended.
	ErrClosed = errors.New("provision: not running")
)

// Assignment is where DPS put the device.
type Assignment struct {
	AssignedHub string `json:"assignedHub"`
	DeviceID    string `json:"deviceId"`
	Status      string `json:"status,omitempty"`
	Substatus   string `json:"substatus,omitempty"`
	ETag        string `json:"etag,omitempty"`
}

// Valid reports whether a says the device is assigned to a hub.
func (a Assignment) Valid() bool {
	return strings.EqualFold(a.Status, StatusAssigned) && a.AssignedHub != "" && a.DeviceID != ""
}

// sameHub reports whether a and b point at the same device on the same hub.
func (a Assignment) sameHub(b Assignment) bool {
	return strings.EqualFold(a.AssignedHub, b.AssignedHub) && a.DeviceID == b.DeviceID
}

// DPS is the part of the DPS device client the flow uses (the daemon adapts
// sdk/dps). Both calls are expected to do their own short-term retries
// (polling, 429) and return once DPS gave a final answer or they gave up.
type DPS interface {
	// Register registers the device; payload is the custom allocation
	// payload (nil for none).
	Register(ctx context.Context, payload json.RawMessage) (Assignment, error)
	// Lookup asks for the current registration state without registering.
	// An unknown registration is reported as Assignment{Status:
	// "unassigned"} or an error with HTTP status 404.
	Lookup(ctx context.Context) (Assignment, error)
}

// Session is a live hub connection (the daemon adapts sdk/iothub's Client).
type Session interface {
	// Done is closed when the session ended for good (the client gave up
	// reconnecting, or the hub refused it); Err then says why. An error
	// matching retry.ErrGaveUp means the client already retried for the
	// whole RetryCachedHubFor window: the flow goes to DPS at once.
	Done() <-chan struct{}
	Err() error
	// Close ends the session and waits for it; idempotent.
	Close()
}

// Store persists the assignment (*state.Store satisfies it).
type Store interface {
	Load() (state.State, bool, error)
	Save(state.State) error
}

// Identity is what the cached assignment was made for; a cache made for a
// different identity is ignored.
type Identity struct {
	GlobalEndpoint string
	IDScope        string
	RegistrationID string
	// CredentialID is state.Fingerprint of the credential.
	CredentialID string
}

// Config configures a Provisioner. DPS, Store and Connect are required.
type Config struct {
	Identity Identity
	DPS      DPS
	Store    Store
	// Payload is the custom allocation payload sent with Register.
	Payload json.RawMessage
	// Connect opens a hub session for a. It returns once the hub accepted
	// the connection (or refused it: wrap ErrHubRefused).
	Connect func(ctx context.Context, a Assignment) (Session, error)
	// IsRefusal reports whether a Connect or session error means the hub
	// refused the device. nil: errors.Is(err, ErrHubRefused) or an HTTP
	// status of 401, 403 or 404.
	IsRefusal func(error) bool

	// LookupFirst makes a boot with cached state ask DPS (lookup) before
	// connecting. Default false: go straight to the cached hub.
	LookupFirst bool
	// ForceRegister makes Run register even when the cache is usable, e.g.
	// after a reload changed how the device registers.
	ForceRegister bool
	// RetryCachedHubFor is how long the hub may keep failing before DPS is
	// asked again (0: config.DefaultRetryCachedHubFor).
	RetryCachedHubFor time.Duration
	// Retry shapes the waits between failed attempts; its Clock (nil: the
	// real clock) is also the flow's clock.
	Retry retry.Policy
	// HubMaxBackoff caps the waits between failed attempts on the hub
	// (0: DefaultHubMaxBackoff); Retry.MaxBackoff caps those on DPS.
	HubMaxBackoff time.Duration
	// Logger receives progress; nil discards.
	Logger *slog.Logger
}

// Phase says what the flow is doing.
type Phase string

const (
	PhaseStarting    Phase = "starting"
	PhaseRegistering Phase = "registering"
	PhaseLookup      Phase = "lookup"
	PhaseConnecting  Phase = "connecting"
	PhaseConnected   Phase = "connected"
	// PhaseReconnecting is reported (by the daemon) while the flow holds a
	// hub session whose client is re-establishing its connection by itself.
	PhaseReconnecting Phase = "reconnecting"
	PhaseWaiting      Phase = "waiting"
	PhaseStopped      Phase = "stopped"
)

// Status is a snapshot for the status command.
type Status struct {
	Phase       Phase      `json:"phase"`
	Assignment  Assignment `json:"assignment"`
	Provisioned bool       `json:"provisioned"`
	Connected   bool       `json:"connected"`
	// Registrations counts DPS registrations made by this process.
	Registrations int `json:"registrations"`
	// LastError is the latest failure on the way to a hub session; it is
	// cleared once the device is connected.
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
	// NextAttempt is when the flow tries again while it waits (phase
	// "waiting"); zero otherwise.
	NextAttempt time.Time `json:"nextAttempt,omitzero"`
	// Failing names the step that keeps failing ("" when none), since
	// when, and how many attempts failed in a row.
	Failing      Step      `json:"failing,omitempty"`
	FailingSince time.Time `json:"failingSince,omitzero"`
	Attempts     int       `json:"attempts,omitempty"`
	// Hint suggests a fix for the current failure (e.g. the clock).
	Hint string `json:"hint,omitempty"`
}

// Result is the outcome of one registration, handed to Reprovision callers.
type Result struct {
	Assignment Assignment
	Err        error
}

// Provisioner runs the flow. Create it with New, run it with Run (once).
type Provisioner struct {
	cfg   Config
	log   *slog.Logger
	clock retry.Clock

	// reprov carries reprovision requests to Run (buffered 1; requests
	// coalesce).
	reprov chan struct{}

	mu       sync.Mutex
	status   Status          // guarded by mu
	retryFor time.Duration   // guarded by mu
	waiters  []chan<- Result // Reprovision callers; guarded by mu
	running  bool            // Run started and not yet returned; guarded by mu
	// saveErr is the last failure to cache the assignment (nil once a
	// save works), kept in the status; guarded by mu.
	saveErr   error
	saveErrAt time.Time // guarded by mu
	ended     bool      // Run returned; guarded by mu
}

// New checks cfg and returns a Provisioner. It starts nothing.
func New(cfg Config) (*Provisioner, error) {
	if cfg.DPS == nil || cfg.Store == nil || cfg.Connect == nil {
		return nil, errors.New("provision: Config needs DPS, Store and Connect")
	}
	if cfg.IsRefusal == nil {
		cfg.IsRefusal = IsRefusal
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	clock := cfg.Retry.Clock
	if clock == nil {
		clock = retry.RealClock()
		cfg.Retry.Clock = clock
	}
	// The flow has its own give-up rule (RetryCachedHubFor).
	cfg.Retry.GiveUpAfter, cfg.Retry.MaxAttempts = 0, 0
	retryFor := cfg.RetryCachedHubFor
	if retryFor <= 0 {
		retryFor = config.DefaultRetryCachedHubFor
	}
	return &Provisioner{
		cfg:      cfg,
		log:      log.With("rid", cfg.Identity.RegistrationID),
		clock:    clock,
		reprov:   make(chan struct{}, 1),
		status:   Status{Phase: PhaseStarting},
		retryFor: retryFor,
	}, nil
}

// hubPolicy is the retry policy for the hub: Retry with the hub's ceiling.
func (p *Provisioner) hubPolicy() retry.Policy {
	hp := p.cfg.Retry
	hp.MaxBackoff = p.cfg.HubMaxBackoff
	if hp.MaxBackoff <= 0 {
		hp.MaxBackoff = DefaultHubMaxBackoff
	}
	return hp
}

// IsRefusal is the default Config.IsRefusal.
func IsRefusal(err error) bool {
	if errors.Is(err, ErrHubRefused) {
		return true
	}
	var sc retry.StatusCoder
	if errors.As(err, &sc) {
		switch sc.HTTPStatus() {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			return true
		}
	}
	return false
}

// SetRetryCachedHubFor changes the window live (config reload); d <= 0
// restores the default.
func (p *Provisioner) SetRetryCachedHubFor(d time.Duration) {
	if d <= 0 {
		d = config.DefaultRetryCachedHubFor
	}
	p.mu.Lock()
	p.retryFor = d
	p.mu.Unlock()
}

// Status returns a snapshot.
func (p *Provisioner) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// RequestReprovision asks Run to register with DPS again and move to the
// hub it assigns. It does not block; requests made while one is pending
// coalesce. reason is logged.
func (p *Provisioner) RequestReprovision(reason string) {
	p.log.Info("reprovision requested", "reason", reason)
	select {
	case p.reprov <- struct{}{}:
	default:
	}
}

// Reprovision requests a registration and waits for its outcome (or ctx).
// The hub session is moved afterwards, asynchronously.
func (p *Provisioner) Reprovision(ctx context.Context, reason string) (Assignment, error) {
	ch := make(chan Result, 1)
	p.mu.Lock()
	if p.ended {
		p.mu.Unlock()
		return Assignment{}, ErrClosed
	}
	p.waiters = append(p.waiters, ch)
	p.mu.Unlock()
	p.RequestReprovision(reason)
	select {
	case r := <-ch:
		return r.Assignment, r.Err
	case <-ctx.Done():
		p.mu.Lock()
		for i, w := range p.waiters {
			if w == ch {
				p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
				break
			}
		}
		p.mu.Unlock()
		return Assignment{}, ctx.Err()
	}
}

func (p *Provisioner) setError(err error) {
	p.mu.Lock()
	p.status.LastError = err.Error()
	p.status.LastErrorAt = p.clock.Now()
	p.mu.Unlock()
}

// clearError forgets the last error (the flow got connected), except a
// failure to cache the assignment, which connecting does not fix.
func (p *Provisioner) clearError() {
	p.mu.Lock()
	p.status.LastError, p.status.LastErrorAt = "", time.Time{}
	if p.saveErr != nil {
		p.status.LastError, p.status.LastErrorAt = p.saveErr.Error(), p.saveErrAt
	}
	p.mu.Unlock()
}

func (p *Provisioner) setAssignment(a Assignment) {
	p.mu.Lock()
	p.status.Assignment = a
	p.status.Provisioned = true
	p.mu.Unlock()
}

// Run drives the flow (a Machine) until ctx ends, then closes the session
// and returns ctx's error. It must be called once. The waits run on the
// injected clock; reprovision requests arrive through RequestReprovision
// and Reprovision.
func (p *Provisioner) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.running || p.ended {
		p.mu.Unlock()
		return errors.New("provision: Run called twice")
	}
	p.running = true
	p.mu.Unlock()

	m := p.NewMachine()
	defer func() {
		m.Close()
		p.mu.Lock()
		p.running, p.ended = false, true
		p.status.Phase, p.status.Connected = PhaseStopped, false
		p.status.NextAttempt = time.Time{}
		ws := p.waiters
		p.waiters = nil
		p.mu.Unlock()
		for _, w := range ws {
			w <- Result{Err: ErrClosed}
		}
	}()

	m.Start()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch m.State() {
		case StateWait:
			p.waitIn(ctx, m)
		case StateServe:
			p.serveIn(ctx, m)
		case StateStopped:
			<-ctx.Done() // only a context that ended stops the flow
		default:
			m.Step(ctx)
		}
	}
}

// waitIn waits out m's StateWait on the injected clock, unless ctx ends
// or a reprovision request cuts it short.
func (p *Provisioner) waitIn(ctx context.Context, m *Machine) {
	t := p.clock.NewTimer(m.Delay())
	defer t.Stop()
	select {
	case <-t.C():
		m.WaitOver()
	case <-ctx.Done():
	case <-p.reprov:
		m.Reprovision()
	}
}

// serveIn holds m's StateServe until the session ends, a reprovision
// request arrives or ctx ends.
func (p *Provisioner) serveIn(ctx context.Context, m *Machine) {
	select {
	case <-ctx.Done():
	case <-p.reprov:
		m.Reprovision()
	case <-m.Session().Done():
		m.SessionEnded(m.Session().Err())
	}
}

// retryWindow is the current RetryCachedHubFor.
func (p *Provisioner) retryWindow() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.retryFor
}

// register makes one registration, saves the result and answers the
// Reprovision callers waiting when it started. retrying says DPS has been
// failing: the attempt is then logged at debug level only.
func (p *Provisioner) register(ctx context.Context, retrying bool) (Assignment, error) {
	// Requests made before this attempt are served by it.
	select {
	case <-p.reprov:
	default:
	}
	p.mu.Lock()
	ws := p.waiters
	p.waiters = nil
	p.mu.Unlock()

	if retrying {
		p.log.Debug("registering with DPS")
	} else {
		p.log.Info("registering with DPS")
	}
	a, err := p.cfg.DPS.Register(ctx, p.cfg.Payload)
	if err == nil && !a.Valid() {
		err = fmt.Errorf("%w: status %q", ErrNotAssigned, a.Status)
	}
	if err != nil {
		// Not wrapped again: DPS's errors already say "dps: register: …".
		p.setError(err)
	} else {
		p.mu.Lock()
		p.status.Registrations++
		p.mu.Unlock()
		p.log.Info("registered", "hub", a.AssignedHub, "device", a.DeviceID, "substatus", a.Substatus)
		p.save(a, true)
		p.setAssignment(a)
	}
	for _, w := range ws {
		w <- Result{Assignment: a, Err: err}
	}
	return a, err
}

// save caches a; fresh says a comes from a registration or a move (so the
// registration time is now).
func (p *Provisioner) save(a Assignment, fresh bool) {
	id := p.cfg.Identity
	st := state.State{
		GlobalEndpoint: id.GlobalEndpoint,
		IDScope:        id.IDScope,
		RegistrationID: id.RegistrationID,
		CredentialID:   id.CredentialID,
		AssignedHub:    a.AssignedHub,
		DeviceID:       a.DeviceID,
		Substatus:      a.Substatus,
		ETag:           a.ETag,
	}
	if fresh {
		st.LastRegistered = p.clock.Now().UTC()
	} else if old, ok, err := p.cfg.Store.Load(); err == nil && ok {
		st.LastRegistered = old.LastRegistered
	}
	err := p.cfg.Store.Save(st)
	p.mu.Lock()
	if err != nil {
		// The status keeps it, also once connected (clearError): with the
		// log on the same full disk, the status is where it shows.
		p.saveErr = fmt.Errorf("could not cache the assignment (the next boot registers with DPS again): %w", err)
		p.saveErrAt = p.clock.Now()
		p.status.LastError, p.status.LastErrorAt = p.saveErr.Error(), p.saveErrAt
	} else {
		p.saveErr = nil
	}
	p.mu.Unlock()
	if err != nil {
		p.log.Error("could not cache the assignment; the next boot registers again", "err", err)
	}
}

// loadCached returns the cached assignment if it is usable.
func (p *Provisioner) loadCached() (Assignment, bool) {
	st, ok, err := p.cfg.Store.Load()
	if err != nil {
		p.log.Warn("cached assignment unusable; registering with DPS", "err", err)
		return Assignment{}, false
	}
	if !ok {
		p.log.Info("no cached assignment; registering with DPS")
		return Assignment{}, false
	}
	id := p.cfg.Identity
	if !st.Matches(id.GlobalEndpoint, id.IDScope, id.RegistrationID, id.CredentialID) {
		p.log.Info("cached assignment was made for another identity or credential; registering with DPS")
		return Assignment{}, false
	}
	return Assignment{
		AssignedHub: st.AssignedHub,
		DeviceID:    st.DeviceID,
		Status:      StatusAssigned,
		Substatus:   st.Substatus,
		ETag:        st.ETag,
	}, true
}

// nextWait asks s how long to wait after err. Errors the schedule would
// call permanent (including a per-attempt timeout) still get a backoff
// wait: a daemon never gives up, it only slows down.
func nextWait(s *retry.Schedule, err error) time.Duration {
	if retry.Classify(err).Kind == retry.Permanent {
		// Hide the chain: Classify must not see a context error in it.
		err = retry.Transient(errors.New(err.Error()))
	}
	w, serr := s.Next(err)
	if serr != nil { // unreachable without a retry budget; never spin
		return retry.DefaultMaxBackoff
	}
	return w
}

func isNotFound(err error) bool {
	var sc retry.StatusCoder
	return errors.As(err, &sc) && sc.HTTPStatus() == http.StatusNotFound
}
