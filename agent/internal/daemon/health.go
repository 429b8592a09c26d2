package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/sdk/health"
	"github.com/porthole-iot/porthole/sdk/retry"
)

// errNoHub: there is no hub connection to report on.
var errNoHub = errors.New("daemon: no hub connection")

// healthReporter keeps the twin's health report (sdk/health) current. It
// coalesces: any number of changes (Kick) between two patches become one
// patch, and patches are at least every apart, so stream counters are
// batched and a busy device does not spend its hub quota on health. A
// report equal to the last one sent is not sent again. Its run goroutine
// is owned by the daemon's Run, which stops it by cancelling its context
// and waits for it.
type healthReporter struct {
	clock retry.Clock
	every time.Duration
	log   *slog.Logger
	// build makes the report; send writes it (errNoHub when there is no
	// connection: the next connection kicks again).
	build func() health.Report
	send  func(ctx context.Context, r health.Report) error

	kick chan struct{} // buffered 1: pending changes coalesce
	done chan struct{} // closed when run returns
}

func newHealthReporter(clock retry.Clock, every time.Duration, log *slog.Logger, build func() health.Report, send func(context.Context, health.Report) error) *healthReporter {
	if clock == nil {
		clock = retry.RealClock()
	}
	if every <= 0 {
		every = config.DefaultTwinInterval
	}
	return &healthReporter{clock: clock, every: every, log: log, build: build, send: send,
		kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// Kick says something in the report may have changed. It never blocks.
func (h *healthReporter) Kick() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// run sends patches until ctx ends.
func (h *healthReporter) run(ctx context.Context) {
	defer close(h.done)
	var last []byte      // the last report sent
	var lastAt time.Time // when the last patch was attempted
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.kick:
		}
		if !lastAt.IsZero() {
			if wait := lastAt.Add(h.every).Sub(h.clock.Now()); wait > 0 {
				t := h.clock.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C():
				}
			}
		}
		// Changes made while waiting are in this report.
		select {
		case <-h.kick:
		default:
		}
		r := h.build()
		b, err := json.Marshal(r)
		if err != nil || bytes.Equal(b, last) {
			continue
		}
		lastAt = h.clock.Now()
		switch err := h.send(ctx, r); {
		case err == nil:
			last = b
		case errors.Is(err, errNoHub), ctx.Err() != nil:
		default:
			h.log.Debug("could not report the health in the twin; retrying", "err", err)
			h.Kick()
		}
	}
}

// healthReport builds the twin health report from the status.
func (d *daemon) healthReport() health.Report {
	st := d.status()
	d.mu.Lock()
	cfg, since := d.cfg, d.hubSince
	// The hub connection itself, not the flow's phase: connect kicks the
	// reporter before the flow marks itself connected, and the report is
	// only ever sent over a live connection.
	connected := d.hub != nil && d.hubUp
	failure, failureAt := d.lastFailure, d.lastFailureAt
	d.mu.Unlock()
	if st.LastError != "" && !st.LastErrorAt.Before(failureAt) {
		failure, failureAt = st.LastError, st.LastErrorAt
	}
	r := health.Report{
		Version: st.Version,
		Started: health.At(st.Started),
		Hub:     health.Hub{Transport: string(cfg.Hub.Transport), Connected: connected, Since: health.At(since)},
		Provisioning: health.Provisioning{
			Hub: st.AssignedHub, DeviceID: st.DeviceID, Substatus: st.Substatus,
		},
		Streams:       health.Streams{Open: st.Streams.Open, Accepted: st.Streams.Accepted, Rejected: st.Streams.Rejected},
		LastRejection: st.Streams.LastRejection,
	}
	if s, ok := d.store.Known(); ok {
		r.Provisioning.LastRegistration = health.At(s.LastRegistered)
	}
	if failure != "" {
		r.LastError = &health.Event{Message: health.Clip(failure), At: health.At(failureAt)}
	}
	if lr := st.LastReload; lr != nil {
		rl := &health.Reload{At: health.At(lr.At), Result: health.ReloadApplied, Detail: health.Clip(lr.Applied)}
		if lr.Error != "" {
			rl.Result, rl.Detail = health.ReloadRefused, health.Clip(lr.Error)
		}
		r.ConfigReload = rl
	}
	return r
}

// sendHealth writes r in the twin over the current hub connection.
func (d *daemon) sendHealth(ctx context.Context, r health.Report) error {
	d.mu.Lock()
	hub, up := d.hub, d.hubUp
	d.mu.Unlock()
	if hub == nil || !up {
		return errNoHub
	}
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	return hub.UpdateReported(ctx, r.Patch())
}
