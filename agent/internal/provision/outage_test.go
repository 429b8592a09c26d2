package provision

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// record is one log line kept by recorder.
type record struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// recorder is a slog.Handler that keeps every record (all levels).
type recorder struct {
	mu    *sync.Mutex
	recs  *[]record
	attrs []slog.Attr
}

func newRecorder() recorder { return recorder{mu: new(sync.Mutex), recs: new([]record)} }

func (r recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r recorder) Handle(_ context.Context, rec slog.Record) error {
	m := map[string]string{}
	for _, a := range r.attrs {
		m[a.Key] = a.Value.String()
	}
	rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	r.mu.Lock()
	*r.recs = append(*r.recs, record{rec.Level, rec.Message, m})
	r.mu.Unlock()
	return nil
}

func (r recorder) WithAttrs(as []slog.Attr) slog.Handler {
	r.attrs = append(append([]slog.Attr(nil), r.attrs...), as...)
	return r
}

func (r recorder) WithGroup(string) slog.Handler { return r }

func (r recorder) all() []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]record(nil), *r.recs...)
}

// clockErr is what crypto/tls returns when the server's certificate starts
// after the device's time (a board booting in 1970).
func clockErr() error {
	return fmt.Errorf("Post \"https://global.dps.local/\": %w", &tls.CertificateVerificationError{
		Err: x509.CertificateInvalidError{Reason: x509.Expired, Detail: "current time 1970-01-01T00:00:42Z is before 2025-01-01T00:00:00Z"},
	})
}

// A boot with DPS unreachable (DNS failing, then the port closed, then a
// clock at 1970), then the hub refusing connections for a while: the log
// gets one line per state change, whatever the number of retries; the
// retries are at debug level; the status shows the step, the attempts,
// the last error and, for the clock, a hint.
func TestOutageLogsOncePerStateChange(t *testing.T) {
	dnsErr := fmt.Errorf("dial tcp: %w", &net.DNSError{Err: "no such host", Name: "global.dps.local", IsNotFound: true})
	refused := fmt.Errorf("dial tcp 127.0.0.1:9: %w", syscall.ECONNREFUSED)
	var infoPlus [][]string // per case: the Info+ messages in order
	for _, repeat := range []int{1, 4} {
		t.Run(fmt.Sprintf("%d retries per cause", repeat), func(t *testing.T) {
			e := newEnv(t)
			causes := []error{dnsErr, refused, clockErr()}
			e.dps.register = func(n int) (Assignment, error) {
				if i := (n - 1) / repeat; i < len(causes) {
					return Assignment{}, causes[i]
				}
				return assigned("hub-a.local"), nil
			}
			e.hubs.setFail("hub-a.local", refused)
			rec := newRecorder()
			cfg := e.config()
			cfg.Logger = slog.New(rec)
			p, _ := New(cfg)
			e.start(p)

			dpsFailures := repeat * len(causes)
			for i := 1; i <= dpsFailures+repeat; i++ {
				d, err := e.clock.WaitTimer(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				st := p.Status()
				step, want := StepDPS, causes[min((i-1)/repeat, len(causes)-1)]
				attempt := i
				if i > dpsFailures {
					step, want, attempt = StepHub, refused, i-dpsFailures
				}
				if st.Phase != PhaseWaiting || st.Failing != step || st.Attempts != attempt || st.LastError == "" ||
					!strings.Contains(st.LastError, want.Error()) || st.FailingSince.IsZero() {
					t.Fatalf("wait %d: status %+v, want failing %q attempt %d with %q", i, st, step, attempt, want)
				}
				if next := e.clock.Now().Add(d); !st.NextAttempt.Equal(next) {
					t.Fatalf("wait %d: next attempt %v, want %v (the wait's end)", i, st.NextAttempt, next)
				}
				if isClock := want == causes[2] && step == StepDPS; (st.Hint != "") != isClock {
					t.Fatalf("wait %d: hint %q", i, st.Hint)
				}
				if i == dpsFailures+repeat {
					e.hubs.setFail("hub-a.local", nil)
				}
				e.clock.Advance(d)
			}
			if s := recv(t, e.hubs.sessions, "session"); s.hub != "hub-a.local" {
				t.Fatalf("connected to %q", s.hub)
			}
			waitLogged(t, rec, "connected to the hub")
			if st := waitConnected(t, p); st.Failing != "" || st.Attempts != 0 || st.Hint != "" || !st.NextAttempt.IsZero() {
				t.Fatalf("status after recovery %+v", st)
			}

			var msgs []string
			var warns, hints, debugRetries int
			for _, r := range rec.all() {
				if r.level >= slog.LevelInfo {
					msgs = append(msgs, r.msg)
				}
				if r.level >= slog.LevelWarn {
					warns++
				}
				if r.attrs["hint"] != "" {
					hints++
					if r.level != slog.LevelWarn || !strings.Contains(r.attrs["hint"], "check the system clock") || r.attrs["now"] == "" {
						t.Errorf("clock line %+v", r)
					}
				}
				if r.msg == "still failing; retrying" {
					debugRetries++
					if r.level != slog.LevelDebug || r.attrs["retry_in"] == "" || r.attrs["err"] == "" {
						t.Errorf("retry line %+v", r)
					}
				}
			}
			// DNS, refused (cause changed), clock (cause changed), hub.
			if warns != 4 || hints != 1 {
				t.Errorf("%d warnings, %d clock hints; want 4 and 1:\n%s", warns, hints, strings.Join(msgs, "\n"))
			}
			if want := (dpsFailures + repeat) - 4; debugRetries != want {
				t.Errorf("%d debug retry lines, want %d", debugRetries, want)
			}
			for _, m := range []string{"DPS reachable again", "hub reachable again"} {
				if n := count(msgs, m); n != 1 {
					t.Errorf("%q logged %d times:\n%s", m, n, strings.Join(msgs, "\n"))
				}
			}
			infoPlus = append(infoPlus, msgs)
		})
	}
	if len(infoPlus) == 2 && strings.Join(infoPlus[0], "\n") != strings.Join(infoPlus[1], "\n") {
		t.Errorf("the info-level log depends on the number of retries:\n--- 1 retry per cause\n%s\n--- 4 retries per cause\n%s",
			strings.Join(infoPlus[0], "\n"), strings.Join(infoPlus[1], "\n"))
	}
}

// waitLogged waits until rec has a record with message msg.
func waitLogged(t *testing.T, rec recorder, msg string) {
	t.Helper()
	testwait.For(t, 20*time.Second, fmt.Sprintf("%q to be logged", msg), func() (bool, string) {
		all := rec.all()
		msgs := make([]string, len(all))
		for i, r := range all {
			if r.msg == msg {
				return true, ""
			}
			msgs[i] = r.msg
		}
		return false, fmt.Sprintf("%d records: %q", len(msgs), msgs)
	})
}

// waitConnected waits until the flow reports the phase connected (the
// session reaches the test just before the flow records it).
func waitConnected(t *testing.T, p *Provisioner) Status {
	t.Helper()
	var st Status
	testwait.For(t, 20*time.Second, "phase connected", func() (bool, string) {
		st = p.Status()
		return st.Phase == PhaseConnected, fmt.Sprintf("%+v", st)
	})
	return st
}

func count(ss []string, s string) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

// A boot with a cached assignment and LookupFirst while DPS is down goes to
// the cached hub right after the failed lookup, with one log line.
func TestLookupDownConnectsCachedHubAtOnce(t *testing.T) {
	e := newEnv(t)
	e.seed("hub-a.local")
	e.dps.lookup = func(int) (Assignment, error) {
		return Assignment{}, fmt.Errorf("dial: %w", &net.DNSError{Err: "no such host", Name: "global.dps.local", IsNotFound: true})
	}
	rec := newRecorder()
	cfg := e.config()
	cfg.Logger = slog.New(rec)
	cfg.LookupFirst = true
	p, _ := New(cfg)
	e.start(p)
	if s := recv(t, e.hubs.sessions, "session"); s.hub != "hub-a.local" {
		t.Fatalf("connected to %q", s.hub)
	}
	// Connected: the lookup failure was logged once (below) and is no
	// longer the status's error.
	if st := waitConnected(t, p); st.Failing != "" || st.LastError != "" || !st.LastErrorAt.IsZero() {
		t.Fatalf("status %+v", st)
	}
	var warns []string
	for _, r := range rec.all() {
		if r.level >= slog.LevelWarn {
			warns = append(warns, r.msg)
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "DPS lookup failing") {
		t.Fatalf("warnings %q", warns)
	}
}

func TestCauseOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{clockErr(), causeClock},
		{errors.New("x509: " + x509NotValidNow + ": current time …"), causeClock},
		{&net.DNSError{Err: "no such host", Name: "x.invalid"}, causeDNS},
		{fmt.Errorf("w: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), causeTLS},
		{x509.CertificateInvalidError{Reason: x509.NotAuthorizedToSign}, causeTLS},
		{&retry.StatusError{Code: 503}, "status 503"},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, causeRefused},
		{syscall.EHOSTUNREACH, causeNoRoute},
		{fmt.Errorf("attempt: %w", context.DeadlineExceeded), causeTimeout},
		{errors.New("something else"), causeOther},
	} {
		if got := causeOf(tc.err); got != tc.want {
			t.Errorf("causeOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if IsClockProblem(nil) || IsClockProblem(x509.CertificateInvalidError{Reason: x509.NotAuthorizedToSign}) || !IsClockProblem(clockErr()) {
		t.Error("IsClockProblem")
	}
}

// TestOutageReminders: a DPS outage that lasts hours logs its first line
// at once (with the wait before the next try), a reminder about a minute
// later, then reminders at doubling intervals up to one an hour, each
// saying when the next attempt is; every other retry is at debug level.
func TestOutageReminders(t *testing.T) {
	e := newEnv(t)
	refused := fmt.Errorf("dial tcp 127.0.0.1:9: %w", syscall.ECONNREFUSED)
	e.dps.register = func(int) (Assignment, error) { return Assignment{}, refused }
	rec := newRecorder()
	cfg := e.config()
	cfg.Logger = slog.New(rec)
	cfg.Retry.Rand = func() float64 { return 1 } // the longest waits: fewest attempts
	p, _ := New(cfg)
	e.start(p)

	start := e.clock.Now()
	var at []time.Duration // when each reminder was logged, since the start
	seen, attempts := 0, 0
	for e.clock.Now().Sub(start) < 6*time.Hour {
		d, err := e.clock.WaitTimer(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		attempts++
		<-e.dps.called // one register per wait (the fake's record is bounded)
		for _, r := range rec.all()[seen:] {
			if r.msg == "still failing; retrying" && r.level == slog.LevelInfo {
				at = append(at, e.clock.Now().Sub(start))
				if r.attrs["retry_in"] != d.String() || r.attrs["failing_for"] == "" {
					t.Errorf("reminder %+v, want retry_in %s and failing_for", r, d)
				}
			}
			seen++
		}
		e.clock.Advance(d)
	}
	if len(at) == 0 {
		t.Fatal("no reminder in 6 hours")
	}
	if at[0] < ReminderFirst || at[0] > ReminderFirst+retry.DefaultMaxBackoff {
		t.Errorf("first reminder after %s, want about %s", at[0], ReminderFirst)
	}
	for i := 1; i < len(at); i++ {
		gap := at[i] - at[i-1]
		want := min(ReminderFirst<<i, ReminderMax)
		if gap < want || gap > want+retry.DefaultMaxBackoff {
			t.Errorf("reminder %d came %s after the previous one, want about %s (all: %v)", i, gap, want, at)
		}
	}
	// 1, 2, 4, 8, 16, 32 min, then hourly: 6 in the first two hours, then
	// about 4 more.
	if len(at) < 8 || len(at) > 12 {
		t.Errorf("%d reminders in 6 h over %d attempts, want 8 to 12: %v", len(at), attempts, at)
	}
}
