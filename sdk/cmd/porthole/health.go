package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/porthole-iot/porthole/sdk/health"
	"github.com/porthole-iot/porthole/sdk/service"
	"github.com/porthole-iot/porthole/sdk/stream"
)

// healthOf reads the agent's report (sdk/health, the one definition of its
// shape) from a twin; nil when there is none (not a porthole agent, or an
// agent too old to report) or it does not parse. Unknown fields are
// ignored, so a newer agent's report still reads.
func healthOf(t *service.Twin) *health.Report {
	if t == nil {
		return nil
	}
	r, ok, err := health.FromTwin(t.Properties.Reported)
	if !ok || err != nil {
		return nil
	}
	return &r
}

// timeOf is a report time as the CLI's output carries it: nil when the
// report has none.
func timeOf(t health.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	v := t.Time
	return &v
}

// refusedError is a stream the device refused, with its reason when the
// agent reported one.
type refusedError struct {
	device, stream, reason string
	err                    error
}

func (e *refusedError) Error() string {
	if e.reason == "" {
		return fmt.Sprintf("device %s refused stream %q (it reported no reason: an agent without health reports, or the report is not in yet)", e.device, e.stream)
	}
	return fmt.Sprintf("device %s refused stream %q: %s", e.device, e.stream, e.reason)
}

func (e *refusedError) Unwrap() error { return e.err }

// rejectionReason reads the device's last reported rejection of stream
// name, if it is recent (not older than since minus a margin for clock
// skew). The agent reports it shortly after refusing; the reading waits up
// to wait for it.
func rejectionReason(ctx context.Context, c *service.Client, device, name string, since time.Time, wait time.Duration) string {
	deadline := time.Now().Add(wait)
	for {
		tw, err := c.GetTwin(ctx, device)
		if err != nil {
			return ""
		}
		h := healthOf(tw)
		if h == nil {
			return "" // no health report: nothing to wait for
		}
		if h.LastRejection != nil && h.LastRejection.Stream == name &&
			(h.LastRejection.At.IsZero() || h.LastRejection.At.After(since.Add(-2*time.Minute))) {
			return h.LastRejection.Reason
		}
		if time.Now().After(deadline) {
			return ""
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ""
		case <-t.C:
		}
	}
}

// openStream finds device's hub, opens the stream and, when the device
// refuses, says why.
// before, if not nil, is told the hub before the stream is asked for.
func (s *settings) openStream(ctx context.Context, e *env, device string, sf streamFlags, before func(target), opts ...service.StreamOption) (*stream.Conn, target, error) {
	var conn *stream.Conn
	var found target
	err := s.withDevice(ctx, e, device, func(c *service.Client, t target) error {
		found = t
		if before != nil {
			before(t)
		}
		asked := time.Now()
		var err error
		conn, err = c.OpenStream(ctx, device, sf.stream, append(sf.options(), opts...)...)
		return s.streamError(ctx, c, device, sf.stream, asked, err)
	})
	return conn, found, err
}

// streamError explains a failed stream request asked at asked: a device's
// refusal with the reason it reported in its twin (waited for up to 3 s),
// anything else with the settings' hint. It returns nil for a nil err.
func (s *settings) streamError(ctx context.Context, c *service.Client, device, stream string, asked time.Time, err error) error {
	if errors.Is(err, service.ErrStreamRejected) {
		return &refusedError{device: device, stream: stream, err: err,
			reason: rejectionReason(ctx, c, device, stream, asked, 3*time.Second)}
	}
	if err != nil {
		return fmt.Errorf("%w%s", err, s.hint(err))
	}
	return nil
}
