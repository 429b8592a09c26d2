package doctor

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/config"
)

// Status is the outcome of one check.
type Status string

const (
	StatusOK   Status = "ok"
	StatusWarn Status = "warn" // works, but something should be fixed
	StatusFail Status = "fail" // the agent will not work until this is fixed
	StatusSkip Status = "skip" // not run: an earlier check failed or nothing to check
)

// Check is one line of the checklist.
type Check struct {
	// Name says what was checked, in words a technician knows.
	Name string `json:"name"`
	// Status is the outcome.
	Status Status `json:"status"`
	// Detail says what was found.
	Detail string `json:"detail"`
	// Fix is a one-line hint: what to do for warn and fail, a tip for ok.
	Fix string `json:"fix,omitempty"`
}

// Report is every check in the order run.
type Report struct {
	Checks []Check `json:"checks"`
}

// OK reports whether no check failed (warnings allowed).
func (r Report) OK() bool { return r.count(StatusFail) == 0 }

// Find returns the first check whose name starts with prefix.
func (r Report) Find(prefix string) (Check, bool) {
	for _, c := range r.Checks {
		if strings.HasPrefix(c.Name, prefix) {
			return c, true
		}
	}
	return Check{}, false
}

func (r Report) count(s Status) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == s {
			n++
		}
	}
	return n
}

var labels = map[Status]string{
	StatusOK:   "[ ok ]",
	StatusWarn: "[WARN]",
	StatusFail: "[FAIL]",
	StatusSkip: "[skip]",
}

// Write prints the report as a checklist:
//
//	[ ok ] Config file: /etc/porthole/agent.yaml, mode 0600
//	[FAIL] TLS to the provisioning service: the server's certificate is not trusted
//	       fix: set ca_file to the CA that issued it, or check the date
//
// followed by a summary line.
func (r Report) Write(w io.Writer) error {
	var b strings.Builder
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%s %s: %s\n", labels[c.Status], c.Name, c.Detail)
		if c.Fix != "" {
			word := "fix"
			if c.Status == StatusOK || c.Status == StatusSkip {
				word = "tip"
			}
			fmt.Fprintf(&b, "       %s: %s\n", word, c.Fix)
		}
	}
	fails, warns := r.count(StatusFail), r.count(StatusWarn)
	switch {
	case fails > 0:
		fmt.Fprintf(&b, "\n%s, %s: the agent will not work until the failures are fixed.\n", plural(fails, "failure"), plural(warns, "warning"))
	case warns > 0:
		fmt.Fprintf(&b, "\nNo failures, %s.\n", plural(warns, "warning"))
	default:
		b.WriteString("\nAll checks passed.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// Options are Run's seams; the zero value uses the real network and clock.
type Options struct {
	// DialContext opens TCP connections (after resolve overrides are
	// applied); nil means a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// LookupHost resolves a host name; nil means net.DefaultResolver.
	LookupHost func(ctx context.Context, host string) ([]string, error)
	// Now is the local clock; nil means time.Now. It is also the time
	// certificates are checked against.
	Now func() time.Time
	// Timeout bounds each network step (a lookup, a connect, a handshake,
	// a request); 0 means DefaultTimeout.
	Timeout time.Duration
	// SkipLookup leaves out the DPS registration status lookup, the only
	// check that sends the device's credential.
	SkipLookup bool
}

// DefaultTimeout bounds each network step.
const DefaultTimeout = 10 * time.Second

// bannerWait bounds how long a target is given to send its SSH banner.
const bannerWait = time.Second

// certExpiryWarning is how early an expiring device certificate is flagged.
const certExpiryWarning = 30 * 24 * time.Hour

// Run runs every check against cfg (loaded with config.Load, secrets
// included) and returns the report. It does not stop at a failure: checks
// that depend on a failed one are skipped with a reason. ctx bounds the
// whole run.
func Run(ctx context.Context, cfg *config.Config, opts Options) Report {
	d := newDoctor(ctx, cfg, opts)
	defer d.net.close()

	d.configFile()
	d.secretFiles()
	d.stateDir()
	d.credentials()
	d.dps()
	d.hub()
	d.targets()
	return Report{Checks: d.checks}
}

type doctor struct {
	ctx  context.Context
	cfg  *config.Config
	opts Options
	net  *network

	checks []Check

	// Findings later checks use.
	cachedHub   string        // from state.json when it matches the identity
	assignedHub string        // from the DPS lookup
	clockSkew   time.Duration // server minus local; valid when clockKnown
	clockKnown  bool
}

func newDoctor(ctx context.Context, cfg *config.Config, opts Options) *doctor {
	if opts.DialContext == nil {
		var d net.Dialer
		opts.DialContext = d.DialContext
	}
	if opts.LookupHost == nil {
		opts.LookupHost = net.DefaultResolver.LookupHost
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	return &doctor{ctx: ctx, cfg: cfg, opts: opts, net: newNetwork(cfg, opts)}
}

func (d *doctor) add(c Check) { d.checks = append(d.checks, c) }

func (d *doctor) ok(name, detail string) { d.add(Check{Name: name, Status: StatusOK, Detail: detail}) }

func (d *doctor) warn(name, detail, fix string) {
	d.add(Check{Name: name, Status: StatusWarn, Detail: detail, Fix: fix})
}

func (d *doctor) fail(name, detail, fix string) {
	d.add(Check{Name: name, Status: StatusFail, Detail: detail, Fix: fix})
}

func (d *doctor) skip(name, detail string) {
	d.add(Check{Name: name, Status: StatusSkip, Detail: detail})
}

// stepCtx bounds one network step.
func (d *doctor) stepCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(d.ctx, d.opts.Timeout)
}
