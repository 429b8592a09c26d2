package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/bridge"
	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/agent/internal/logsink"
	"github.com/porthole-iot/porthole/agent/internal/provision"
	"github.com/porthole-iot/porthole/agent/internal/state"
	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/stream"
)

// DefaultGracePeriod is how long SIGTERM lets open streams finish.
const DefaultGracePeriod = 10 * time.Second

// reportTimeout bounds the reported-properties update after a connect.
const reportTimeout = 30 * time.Second

// Options configures Run.
type Options struct {
	// ConfigPath is the agent config (default config.DefaultPath).
	ConfigPath string
	// Log is the stderr of the log sink: where the "stderr" destination
	// writes and where failures of the syslog and file destinations are
	// reported (nil: os.Stderr).
	Log io.Writer
	// Version is reported in status and in the twin.
	Version string
	// DialContext opens every TCP connection to DPS, the hub and the
	// streaming endpoint (after the config's resolve overrides); nil: a
	// net.Dialer. Stream targets are always dialled directly.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Signals delivers SIGHUP (reload) and SIGTERM/SIGINT (stop); nil: the
	// process's signals.
	Signals <-chan os.Signal
	// GracePeriod bounds the stream drain at stop (0: DefaultGracePeriod).
	GracePeriod time.Duration
	// LookupFirst makes a boot with a cached assignment ask DPS before
	// connecting (see provision.Config.LookupFirst).
	LookupFirst bool
	// Clock times the provisioning flow's waits (nil: the real clock).
	Clock retry.Clock
	// Ready, if non-nil, is called once the control socket listens.
	Ready func()

	// backend makes the DPS and hub clients (nil: the real SDK clients).
	backend backend
}

// daemon is one Run.
type daemon struct {
	opts    Options
	log     *slog.Logger
	sink    *logsink.Sink // the log destination; its level changes on reload
	bridge  *bridge.Bridge
	health  *healthReporter
	store   *state.Store
	backend backend
	started time.Time

	mu         sync.Mutex
	cfg        *config.Config         // running config; guarded by mu
	prov       *provision.Provisioner // current flow; guarded by mu
	regID      string                 // registration ID in use; guarded by mu
	method     string                 // reprovision method name; guarded by mu
	hub        hubConn                // latest hub connection; guarded by mu
	hubUp      bool                   // latest hub state; guarded by mu
	hubErr     string                 // why the hub connection was last lost; guarded by mu
	hubErrAt   time.Time              // when; guarded by mu
	hubNextAt  time.Time              // the hub client's next reconnect attempt; guarded by mu
	lastReload *ReloadOutcome         // guarded by mu
	// While the hub client reconnects by itself: since when, how many
	// waits it announced, and the pacing of the log's reminders. Guarded
	// by mu.
	hubDownSince time.Time
	hubWaits     int
	hubRemind    provision.Reminder
	hubSince     time.Time // when the hub connection was (re)established; guarded by mu
	// The latest failure on the way to (or of) a hub connection, kept
	// after the status clears it on recovery: the twin health reports it
	// once the device is connected again. Guarded by mu.
	lastFailure   string
	lastFailureAt time.Time
	hubLosses     uint64 // hub connections lost; guarded by mu
}

// Run loads the config and runs the agent until ctx ends or a stop signal
// arrives; then it drains streams and returns nil. It returns an error
// when the agent cannot start (bad config, state directory, another agent
// running).
func Run(ctx context.Context, opts Options) error {
	if opts.ConfigPath == "" {
		opts.ConfigPath = config.DefaultPath
	}
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	if opts.GracePeriod <= 0 {
		opts.GracePeriod = DefaultGracePeriod
	}
	if opts.backend == nil {
		opts.backend = sdkBackend{clock: opts.Clock}
	}
	cfg, warns, err := config.Load(opts.ConfigPath)
	if err != nil {
		return err
	}
	sink, err := logsink.New(cfg.Log, logsink.Options{Stderr: opts.Log})
	if err != nil {
		return err
	}
	defer sink.Close()
	d := &daemon{opts: opts, backend: opts.backend, started: time.Now(), sink: sink, log: sink.Logger()}
	for _, w := range warns {
		d.log.Warn("config: " + w.String())
	}

	store, err := state.Open(cfg.StateDir)
	if err != nil {
		return err
	}
	if note := store.DirNote(); note != "" {
		d.log.Warn(note)
	}
	d.store = store
	ln, err := listenControl(SocketPath(cfg.StateDir))
	if err != nil {
		return err
	}
	// Serve the control socket only once the daemon's fields are set (a
	// query arriving earlier waits in the listen backlog); until then this
	// closes the listener on an early return.
	var ctl *controlServer
	defer func() {
		if ctl == nil {
			ln.Close()
		}
	}()

	sigs := opts.Signals
	if sigs == nil {
		ch := make(chan os.Signal, 4)
		signal.Notify(ch, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
		defer signal.Stop(ch)
		sigs = ch
	}

	var audit *stream.AuditLog
	if f := cfg.Streams.Audit.File; f != "" {
		w, err := logsink.OpenFile(f, cfg.Streams.Audit.MaxSize, cfg.Streams.Audit.MaxFiles, opts.Log)
		if err != nil {
			return fmt.Errorf("daemon: audit file: %w", err)
		}
		defer w.Close()
		audit = stream.NewAuditLog(w)
	}
	d.health = newHealthReporter(opts.Clock, cfg.Health.TwinInterval, d.log, d.healthReport, d.sendHealth)
	d.bridge = bridge.New(bridge.Config{Policy: bridge.PolicyFrom(cfg.Streams), Logger: d.log, Changed: d.health.Kick, Now: d.now,
		Audit: audit, Clock: opts.Clock})
	defer d.bridge.Close()

	prov, regID, err := d.newProvisioner(cfg, store, false)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.cfg, d.prov, d.regID, d.method = cfg, prov, regID, cfg.Hub.ReprovisionMethod
	d.mu.Unlock()
	ctl = newControlServer(ln, d.log, d.handleControl)
	defer ctl.close()
	hctx, stopHealth := context.WithCancel(context.Background())
	go d.health.run(hctx) // owned by Run: stopped and waited for below
	defer func() {
		stopHealth()
		<-d.health.done
	}()
	if dir := cfg.Metrics.Textfile; dir != "" {
		tw := d.newTextfileWriter(dir, cfg.Metrics.Interval)
		mctx, stopMetrics := context.WithCancel(context.Background())
		go tw.run(mctx) // owned by Run: stopped (final write) and waited for below
		defer func() {
			stopMetrics()
			<-tw.done
		}()
	}
	d.log.Info("porthole agent starting", "version", opts.Version, "config", cfg.File, "rid", regID)
	if opts.Ready != nil {
		opts.Ready()
	}

	for {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- prov.Run(runCtx) }() // owned by Run: waited for below on every path

	wait:
		for {
			select {
			case <-ctx.Done():
				return d.shutdown(cancel, done)
			case err := <-done:
				cancel()
				if ctx.Err() != nil {
					return d.shutdown(func() {}, closedWith(err))
				}
				return fmt.Errorf("daemon: provisioning stopped: %w", err)
			case s := <-sigs:
				if s != syscall.SIGHUP {
					d.log.Info("stopping", "signal", s.String())
					return d.shutdown(cancel, done)
				}
				next, np, nid, ok := d.reload(store)
				if !ok {
					continue
				}
				cancel()
				<-done
				d.mu.Lock()
				d.cfg, d.prov, d.regID, d.hub, d.hubUp = next, np, nid, nil, false
				d.mu.Unlock()
				prov = np
				break wait
			}
		}
	}
}

func closedWith(err error) chan error {
	ch := make(chan error, 1)
	ch <- err
	return ch
}

// shutdown drains streams, stops the flow (closing the hub connection)
// and returns nil: a requested stop is a clean exit.
func (d *daemon) shutdown(cancel context.CancelFunc, done <-chan error) error {
	d.log.Info("draining streams", "grace", d.opts.GracePeriod, "open", d.bridge.Stats().Open)
	gctx, gcancel := context.WithTimeout(context.Background(), d.opts.GracePeriod)
	defer gcancel()
	if err := d.bridge.Shutdown(gctx); err != nil {
		d.log.Warn("streams cut at shutdown", "err", err)
	}
	cancel()
	<-done
	d.log.Info("porthole agent stopped")
	return nil
}

// newProvisioner builds the flow for cfg.
func (d *daemon) newProvisioner(cfg *config.Config, store *state.Store, force bool) (*provision.Provisioner, string, error) {
	dial := d.dialer(cfg)
	dps, regID, err := d.backend.NewDPS(cfg, dial, d.log)
	if err != nil {
		return nil, "", err
	}
	var p *provision.Provisioner
	p, err = provision.New(provision.Config{
		Identity: provision.Identity{
			GlobalEndpoint: cfg.Provisioning.GlobalEndpoint,
			IDScope:        cfg.Provisioning.IDScope,
			RegistrationID: regID,
			CredentialID:   credentialID(cfg),
		},
		DPS:     dps,
		Store:   store,
		Payload: cfg.Provisioning.Payload,
		Connect: func(ctx context.Context, a provision.Assignment) (provision.Session, error) {
			return d.connect(ctx, cfg, dial, a)
		},
		LookupFirst:       d.opts.LookupFirst || cfg.Hub.LookupFirst,
		ForceRegister:     force,
		RetryCachedHubFor: cfg.Hub.RetryCachedHubFor,
		Retry:             retry.Policy{Clock: d.opts.Clock},
		Logger:            d.log,
	})
	return p, regID, err
}

// credentialID fingerprints the configured credential.
func credentialID(cfg *config.Config) string {
	a := cfg.Provisioning.Attestation
	if a.Type == config.AttestX509 && a.Certificate != nil && len(a.Certificate.Certificate) > 0 {
		return state.Fingerprint(a.Certificate.Certificate[0])
	}
	return state.Fingerprint([]byte(a.DeviceKey.Reveal()))
}

// dialer applies cfg's resolve overrides on top of the base dialer.
func (d *daemon) dialer(cfg *config.Config) dialFunc {
	base := d.opts.DialContext
	if base == nil {
		var nd net.Dialer
		base = nd.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return base(ctx, network, cfg.DialAddr(addr))
	}
}

// connect is provision's Connect: dial the hub, install the handlers,
// report the assignment.
func (d *daemon) connect(ctx context.Context, cfg *config.Config, dial dialFunc, a provision.Assignment) (provision.Session, error) {
	d.mu.Lock()
	method, prov := d.method, d.prov
	d.mu.Unlock()
	if prov != nil {
		// What failed before this attempt (DPS, an earlier hub attempt);
		// the flow clears it once connected.
		if ps := prov.Status(); ps.LastError != "" {
			d.noteFailure(ps.LastError, ps.LastErrorAt)
		}
	}
	hooks := hubHooks{
		Methods:  map[string]methodHandler{},
		Stream:   d.bridge.Handle,
		State:    d.hubState,
		Retrying: d.hubRetrying,
	}
	if method != "" {
		hooks.Methods[method] = d.methodFor(method)
	}
	hc, err := d.backend.DialHub(ctx, cfg, a, dial, hooks, d.log)
	if err != nil {
		return nil, err
	}
	d.bridge.SetDevice(a.DeviceID)
	d.mu.Lock()
	d.hub, d.hubUp = hc, true
	d.hubErr, d.hubErrAt, d.hubNextAt = "", time.Time{}, time.Time{} // a new connection
	d.hubDownSince, d.hubWaits = time.Time{}, 0
	d.hubSince = d.now()
	now := d.method
	d.mu.Unlock()
	if now != method && now != "" {
		// A reload renamed the method while we were dialling.
		hc.OnMethod(now, d.methodFor(now))
	}
	d.health.Kick() // the assignment and the new connection
	return session{hc}, nil
}

// methodFor returns the reprovision method handler registered under name;
// it answers 404 once the config names another method.
func (d *daemon) methodFor(name string) methodHandler {
	return func(ctx context.Context, _ json.RawMessage) (int, any) {
		d.mu.Lock()
		current, prov := d.method, d.prov
		d.mu.Unlock()
		if name != current {
			return 404, map[string]string{"error": "no such method"}
		}
		prov.RequestReprovision("direct method " + name)
		return 200, map[string]string{"status": "reprovisioning"}
	}
}

func (d *daemon) hubState(up bool, err error) {
	now := d.now()
	d.mu.Lock()
	d.hubUp = up
	switch {
	case up: // reconnected: the loss is history
		d.hubErr, d.hubErrAt, d.hubNextAt = "", time.Time{}, time.Time{}
		d.hubDownSince, d.hubWaits = time.Time{}, 0
		d.hubSince = now
	case err != nil:
		d.hubErr, d.hubErrAt = err.Error(), now
	}
	if !up {
		d.hubLosses++
	}
	if !up && d.hubDownSince.IsZero() {
		// (The client's first wait may have been announced already: the
		// state handler runs on another goroutine.)
		d.markHubDown(now)
	}
	d.mu.Unlock()
	if !up && err != nil {
		d.noteFailure(err.Error(), now)
	}
	if up {
		d.health.Kick()
		d.log.Info("hub connection restored")
	} else {
		d.log.Warn("hub connection lost; reconnecting", "err", err)
	}
}

// hubRetrying is told by the hub client before each reconnect wait, with
// the failure and the wait: the status shows when it tries next. The first
// wait of an outage is logged with the time of the next attempt; later
// ones only as paced reminders (provision.Reminder), so a long outage
// neither goes silent nor writes a line per attempt (flash wear).
func (d *daemon) hubRetrying(err error, wait time.Duration) {
	now := d.now()
	d.mu.Lock()
	if d.hubDownSince.IsZero() {
		d.markHubDown(now)
	}
	d.hubWaits++
	d.hubNextAt = now.Add(wait)
	if err != nil {
		d.hubErr, d.hubErrAt = err.Error(), now
	}
	first, remind := d.hubWaits == 1, d.hubRemind.Due(now)
	downFor := now.Sub(d.hubDownSince).Round(time.Second)
	failed := d.hubWaits - 1
	d.mu.Unlock()
	if err != nil {
		d.noteFailure(err.Error(), now)
	}
	next := now.Add(wait).UTC().Format(time.RFC3339)
	switch {
	case first:
		d.log.Info("retrying the hub connection", "retry_in", wait, "next_attempt", next)
	case remind:
		d.log.Info("hub still unreachable; retrying", "failing_for", downFor, "failed_attempts", failed, "retry_in", wait, "next_attempt", next)
	}
}

// noteFailure remembers msg as the latest failure if it is newer than
// the one remembered.
func (d *daemon) noteFailure(msg string, at time.Time) {
	d.mu.Lock()
	if !at.Before(d.lastFailureAt) {
		d.lastFailure, d.lastFailureAt = msg, at
	}
	d.mu.Unlock()
}

// markHubDown starts the bookkeeping of a hub outage; d.mu is held.
func (d *daemon) markHubDown(now time.Time) {
	d.hubDownSince, d.hubWaits = now, 0
	d.hubRemind.Start(now)
}

// reload loads the config again and applies it all or nothing: a file
// that does not load, a change that needs a restart, or a new flow that
// cannot be built (for example DPS settings the client refuses) leaves the
// running config untouched. ok says the flow must be rebuilt: np is the
// new flow for next.
func (d *daemon) reload(store *state.Store) (next *config.Config, np *provision.Provisioner, regID string, ok bool) {
	d.mu.Lock()
	old := d.cfg
	d.mu.Unlock()
	d.log.Info("reloading the config", "config", d.opts.ConfigPath)
	nc, warns, err := config.Load(d.opts.ConfigPath)
	if err != nil {
		d.refuse(err)
		return nil, nil, "", false
	}
	for _, w := range warns {
		d.log.Warn("config: " + w.String())
	}
	ch := config.Changes(old, nc)
	if ch.NeedsRestart() {
		d.refuse(fmt.Errorf("restart the agent to change %v", ch.Restart))
		return nil, nil, "", false
	}
	if ch.NeedsReconnect() {
		np, regID, err = d.newProvisioner(nc, store, ch.NeedsReprovision())
		if err != nil {
			d.refuse(err)
			return nil, nil, "", false
		}
	}

	// Committed: apply the live parts (also when a rebuild follows).
	d.sink.SetLevel(nc.Log.Level.Slog())
	d.bridge.SetPolicy(bridge.PolicyFrom(nc.Streams))
	d.mu.Lock()
	prov := d.prov
	// Set the name and read the connection together: connect does the
	// same, so one of the two installs a renamed method.
	d.method = nc.Hub.ReprovisionMethod
	hub := d.hub
	if np == nil {
		d.cfg = nc
	}
	d.mu.Unlock()
	prov.SetRetryCachedHubFor(nc.Hub.RetryCachedHubFor)
	if m := nc.Hub.ReprovisionMethod; np == nil && m != old.Hub.ReprovisionMethod && m != "" && hub != nil {
		hub.OnMethod(m, d.methodFor(m))
	}
	// Report the reload only once everything live is in place, so a
	// status query that sees it also sees the renamed method.
	d.mu.Lock()
	d.lastReload = &ReloadOutcome{At: time.Now(), Applied: ch.String()}
	d.mu.Unlock()
	d.health.Kick()
	d.log.Info("config reloaded", "changes", ch.String())
	return nc, np, regID, np != nil
}

func (d *daemon) refuse(err error) {
	d.log.Error("config reload refused; keeping the running config", "err", err)
	d.mu.Lock()
	d.lastReload = &ReloadOutcome{At: time.Now(), Error: err.Error()}
	d.mu.Unlock()
	d.health.Kick()
}

// now is the clock the status is stamped with.
func (d *daemon) now() time.Time {
	if d.opts.Clock != nil {
		return d.opts.Clock.Now()
	}
	return time.Now()
}

// status assembles the status verb's answer.
func (d *daemon) status() Status {
	d.mu.Lock()
	prov, cfg, regID, hubUp, lr := d.prov, d.cfg, d.regID, d.hubUp, d.lastReload
	hubErr, hubErrAt, hubNextAt := d.hubErr, d.hubErrAt, d.hubNextAt
	hubDown, hubWaits, losses := d.hubDownSince, d.hubWaits, d.hubLosses
	d.mu.Unlock()
	// A status query can arrive before the provisioner exists (the control
	// socket opens first): report the agent as starting.
	ps := provision.Status{Phase: provision.PhaseStarting}
	if prov != nil {
		ps = prov.Status()
	}
	phase := ps.Phase
	if phase == provision.PhaseConnected && !hubUp {
		phase = provision.PhaseReconnecting
		ps.NextAttempt = hubNextAt
	}
	if hubErr != "" && hubErrAt.After(ps.LastErrorAt) {
		ps.LastError, ps.LastErrorAt = hubErr, hubErrAt
	}
	if phase == provision.PhaseReconnecting && ps.Failing == "" && !hubDown.IsZero() {
		// The hub client reconnects by itself: its outage is the failure
		// (the first wait follows the loss, each later one a failed attempt).
		ps.Failing, ps.FailingSince, ps.Attempts = provision.StepHub, hubDown, max(hubWaits-1, 0)
	}
	return Status{
		Version:        d.opts.Version,
		ConfigFile:     cfg.File,
		RegistrationID: regID,
		Started:        d.started,
		Phase:          phase,
		Provisioned:    ps.Provisioned,
		AssignedHub:    ps.Assignment.AssignedHub,
		DeviceID:       ps.Assignment.DeviceID,
		Substatus:      ps.Assignment.Substatus,
		Connected:      ps.Connected && hubUp,
		Registrations:  ps.Registrations,
		HubReconnects:  losses,
		Streams:        d.bridge.Stats(),
		LastError:      ps.LastError,
		LastErrorAt:    ps.LastErrorAt,
		NextAttempt:    ps.NextAttempt,
		Failing:        ps.Failing,
		FailingSince:   ps.FailingSince,
		Attempts:       ps.Attempts,
		Hint:           ps.Hint,
		LastReload:     lr,
	}
}

func (d *daemon) handleControl(ctx context.Context, verb string) Reply {
	switch verb {
	case VerbStatus:
		st := d.status()
		return Reply{Status: &st}
	case VerbReprovision:
		d.mu.Lock()
		prov := d.prov
		d.mu.Unlock()
		ctx, cancel := context.WithTimeout(ctx, reprovisionTimeout)
		defer cancel()
		a, err := prov.Reprovision(ctx, "command line")
		if err != nil {
			return Reply{Error: err.Error()}
		}
		return Reply{Assignment: &a}
	default:
		return Reply{Error: fmt.Sprintf("unknown verb %q", verb)}
	}
}
