package provision

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/porthole-iot/porthole/sdk/retry"
)

// Step names what is failing in an outage (Status.Failing).
type Step string

const (
	// StepDPS: registering with DPS fails.
	StepDPS Step = "dps"
	// StepLookup: the DPS registration status lookup fails.
	StepLookup Step = "dps lookup"
	// StepHub: connecting to (or staying on) the assigned hub fails.
	StepHub Step = "hub"
)

// clockHint is logged (once per outage) and shown in the status when a
// certificate is not valid at the device's time: on boards without a
// battery-backed clock the time starts in 1970 until NTP sets it.
const clockHint = "a server certificate is not valid at this device's time; check the system clock (NTP, RTC)"

// outage tracks one run of consecutive failures of one step, so that the
// log gets one line when the failing starts (or its cause changes) and one
// when it ends; the retries in between are logged at debug level. Owned by
// Run's goroutine; the part the status shows is copied under p.mu.
type outage struct {
	step     Step // "" while nothing fails
	cause    string
	since    time.Time
	attempts int
	remind   Reminder // paces the "still failing" lines
}

// Reminder paces the lines a long outage logs between its first line and
// its recovery: the first ReminderFirst after the outage started, then at
// doubling intervals up to ReminderMax, so that a look at the log shows
// the agent is still trying (and when it tries next) without a line per
// attempt filling the flash. The zero value starts at the first Due.
type Reminder struct {
	next  time.Time
	every time.Duration
}

// Reminder intervals.
const (
	ReminderFirst = time.Minute
	ReminderMax   = time.Hour
)

// Start restarts the pacing at now (an outage starts or changes cause).
func (r *Reminder) Start(now time.Time) {
	r.every = ReminderFirst
	r.next = now.Add(r.every)
}

// Due reports whether a reminder line is due at now, and if so schedules
// the next one.
func (r *Reminder) Due(now time.Time) bool {
	if r.next.IsZero() {
		r.Start(now)
		return false
	}
	if now.Before(r.next) {
		return false
	}
	r.every = min(2*r.every, ReminderMax)
	r.next = now.Add(r.every)
	return true
}

// failed records a failure of step. msg is the line logged when the
// outage starts or its cause changes; attrs are added to every line (the
// hub, the wait before the next try).
func (p *Provisioner) failed(o *outage, step Step, msg string, err error, attrs ...any) {
	cause := causeOf(err)
	now := p.clock.Now()
	if o.step != step {
		o.since = now
		o.attempts = 0
	}
	o.attempts++
	hint := ""
	if cause == causeClock {
		hint = clockHint
	}
	p.mu.Lock()
	p.status.Failing, p.status.FailingSince, p.status.Attempts, p.status.Hint = step, o.since, o.attempts, hint
	p.mu.Unlock()

	args := append([]any{"err", err}, attrs...)
	if o.step == step && o.cause == cause {
		args = append(args, "step", string(step), "attempt", o.attempts)
		if o.remind.Due(now) {
			p.log.Info("still failing; retrying", append(args, "failing_for", now.Sub(o.since).Round(time.Second))...)
			return
		}
		p.log.Debug("still failing; retrying", args...)
		return
	}
	o.remind.Start(now)
	if o.step == step {
		msg += " (the cause changed)"
	}
	o.step, o.cause = step, cause
	if hint != "" {
		args = append(args, "hint", hint, "now", now.UTC().Format(time.RFC3339))
	}
	p.log.Warn(msg+"; retrying with backoff", args...)
}

// recovered ends an outage of step (if there is one) with one log line.
func (p *Provisioner) recovered(o *outage, step Step) {
	if o.step != step {
		return
	}
	what := "DPS"
	if step == StepHub {
		what = "hub"
	}
	p.log.Info(what+" reachable again", "failed_attempts", o.attempts, "down_for", p.clock.Now().Sub(o.since).Round(time.Second))
	*o = outage{}
	p.clearFailing()
}

// leave forgets an outage of step without a recovery line (the flow moved
// on to another step, which logs its own state).
func (p *Provisioner) leave(o *outage, step Step) {
	if o.step == step {
		*o = outage{}
		p.clearFailing()
	}
}

func (p *Provisioner) clearFailing() {
	p.mu.Lock()
	p.status.Failing, p.status.FailingSince, p.status.Attempts, p.status.Hint = "", time.Time{}, 0, ""
	p.mu.Unlock()
}

// Causes are coarse classes of failures: a change of class while a step
// keeps failing is worth a log line (DNS came back but the port is
// closed), a change of detail (another port, another address) is not.
const (
	causeClock   = "clock"
	causeDNS     = "dns"
	causeTLS     = "tls"
	causeRefused = "refused"
	causeNoRoute = "unreachable"
	causeTimeout = "timeout"
	causeOther   = "other"
)

// causeOf classifies err for outage bookkeeping.
func causeOf(err error) string {
	var certInvalid x509.CertificateInvalidError
	var dnsErr *net.DNSError
	var verify *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var sc retry.StatusCoder
	var ne net.Error
	switch {
	case IsClockProblem(err):
		return causeClock
	case errors.As(err, &dnsErr):
		return causeDNS
	case errors.As(err, &verify), errors.As(err, &certInvalid), errors.As(err, &unknownCA), errors.As(err, &hostErr):
		return causeTLS
	case errors.As(err, &sc):
		return fmt.Sprintf("status %d", sc.HTTPStatus())
	case errors.Is(err, syscall.ECONNREFUSED):
		return causeRefused
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETDOWN):
		return causeNoRoute
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return causeTimeout
	}
	return causeOther
}

// x509NotValidNow is the text crypto/x509 uses for a certificate outside
// its validity period (x509.Expired covers "not yet valid" too); it is
// matched when a client flattened the error to text.
const x509NotValidNow = "certificate has expired or is not yet valid"

// IsClockProblem reports whether err says a certificate is expired or not
// yet valid, which on a device almost always means its clock is wrong.
func IsClockProblem(err error) bool {
	if err == nil {
		return false
	}
	var certInvalid x509.CertificateInvalidError
	if errors.As(err, &certInvalid) {
		return certInvalid.Reason == x509.Expired
	}
	return strings.Contains(err.Error(), x509NotValidNow)
}
