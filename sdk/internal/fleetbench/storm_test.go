package fleetbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/fleetplan"
	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/auth"
	"github.com/porthole-iot/porthole/sdk/dps"
	"github.com/porthole-iot/porthole/sdk/retry"
)

// Storm sizes; the defaults make the run take about 3.5 minutes of real
// time: 2,000 devices at 600 admissions a minute need 2000/10 s ≈ 200 s
// minus the quota's burst.
const (
	envStormDevices = "PORTHOLE_BENCH_DEVICES"      // devices (default 2000)
	envStormQuota   = "PORTHOLE_BENCH_QUOTA"        // registrations admitted per minute (default 600)
	envStormMQTT    = "PORTHOLE_BENCH_MQTT_PERCENT" // share of devices on MQTT, 0-100 (default 25)
	envStormJitter  = "PORTHOLE_BENCH_JITTER"       // "off" waits exactly the Retry-After (no upward jitter)

	defaultStormDevices = 2000
	defaultStormQuota   = 600
	defaultMQTTPercent  = 25
	raceStormDevices    = 500 // under -race (about 5 goroutines per device)
	// peakTarget is the most admissions any quota window may hold, as a
	// multiple of the quota.
	peakTarget = 1.2
)

func TestFleetStorm(t *testing.T) {
	requireBench(t, "TestFleetStorm")
	n := envInt(t, envStormDevices, fleetSize(t, defaultStormDevices, raceStormDevices))
	quota := envInt(t, envStormQuota, defaultStormQuota)
	mqttPercent := defaultMQTTPercent
	if v := os.Getenv(envStormMQTT); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 || p > 100 {
			t.Fatalf("%s=%q: want 0-100", envStormMQTT, v)
		}
		mqttPercent = p
	}
	jitter := os.Getenv(envStormJitter) != "off"
	window := time.Minute
	// The run needs about n/quota windows; allow half as much again plus
	// setup before calling it a hang.
	expect := time.Duration(float64(window) * float64(n) / float64(quota))
	ctx := benchContext(t, expect*3/2+2*time.Minute)

	logger := quietLogger(t)
	sim := hubsimtest.New(t,
		hubsimtest.WithLogger(logger),
		hubsimtest.WithDPSConfig(func(c *hubsimtest.DPSConfig) {
			c.Quota = hubsimtest.DPSQuota{Limit: quota, Window: window}
		}))
	groupKey := sim.EnrollGroupSymmetricKey("storm", nil)

	policy := retry.Policy{}
	if !jitter {
		policy.RetryAfterJitter = -1
	}
	devs := make([]*stormDevice, n)
	for i := range devs {
		d := &stormDevice{id: fmt.Sprintf("storm-%05d", i), transport: dps.TransportHTTPS}
		if mqttPercent > 0 && i%100 < mqttPercent {
			d.transport = dps.TransportMQTT
		}
		key, err := auth.DeriveGroupKey(groupKey, d.id)
		if err != nil {
			t.Fatal(err)
		}
		d.track = &tracker{}
		d.client, err = dps.New(dps.Config{
			GlobalEndpoint: sim.GlobalEndpoint,
			IDScope:        sim.IDScope,
			RegistrationID: d.id,
			Transport:      d.transport,
			SymmetricKey:   key,
			RootCAs:        sim.CAPool,
			DialContext:    d.track.dialer(sim.DialContext),
			Retry:          policy,
			Logger:         slog.New(&trackHandler{tr: d.track, next: logger.Handler()}),
		})
		if err != nil {
			t.Fatal(err)
		}
		devs[i] = d
	}

	// The storm: every device starts at the same instant.
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			d.began = time.Now()
			res, err := d.client.Register(ctx, nil)
			d.ended = time.Now()
			d.err = err
			if err == nil {
				d.hub = res.AssignedHub
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	converge := time.Since(t0)

	st := sim.DPS().Stats()
	secs := make([]secondCount, 0, len(st.PerSecond))
	for _, s := range st.PerSecond {
		secs = append(secs, secondCount{Unix: s.Unix, Admitted: s.Admitted, Throttled: s.Throttled})
	}
	r := analyzeStorm(devs, secs, window)
	registered := 0
	for _, h := range sim.HubHostNames {
		registered += len(sim.Hub(h).ListDevices(context.Background()))
	}

	// The planner on the same storm, in the same run: the agent's real
	// provisioning code against hubsim's real DPS on a virtual clock, no
	// sockets (hubsim/fleetplan).
	var cmp fleetplan.Comparison
	var cmpErr error
	var planWall time.Duration
	if jitter {
		pr, err := fleetplan.Run(ctx, fleetplan.StormScenario(n, quota, mqttPercent, 1))
		if err != nil {
			t.Fatalf("fleet planner: %v", err)
		}
		planWall = pr.Wall
		cmp, cmpErr = fleetplan.Compare(pr.StormFigures(), fleetplan.Figures{Converge: converge, PeakPerWindow: st.PeakPerWindow}, fleetplan.Tolerance)
	}

	// The report.
	tb := &table{title: "porthole fleet storm: DPS registration under quota (issue \"Provisioning\")"}
	tb.addf("devices", "", "%d (%d%% MQTT/TLS, the rest HTTPS; one symmetric-key enrollment group, derived keys)", n, mqttPercent)
	tb.addf("quota", "", "%d registrations / %s per ID scope, burst %d (hubsim default Limit/10)", quota, window, quota/10)
	tb.addf("retry policy", "", "sdk/retry default: 429 waits Retry-After (floor 1 s) + upward jitter %s", map[bool]string{true: "0-1 s", false: "off"}[jitter])
	tb.addf("time to converge", "", "%s (storm start → last device assigned); ideal ≈ %s", converge.Round(100*time.Millisecond), idealConverge(n, quota, window).Round(time.Second))
	tb.addf("devices assigned", "", "%d / %d (hub registries hold %d)", r.assigned, n, registered)
	tb.addf("peak admitted per window", "target ≤ 1.2×", "%d in a %s window = %.3f × quota", st.PeakPerWindow, window, float64(st.PeakPerWindow)/float64(quota))
	tb.addf("peak admitted in 1 s", "", "%d (smooth rate %.1f/s)", r.peakAdmittedSecond, float64(quota)/window.Seconds())
	tb.addf("peak register requests per window", "incl. refused", "%d = %.2f × quota (every first try lands at once; refused tries use no quota)", r.peakRegisterWindow, float64(r.peakRegisterWindow)/float64(quota))
	tb.addf("requests seen by hubsim", "", "%d total: %d register, %d poll, %d lookup", st.Requests, st.Registrations, st.Polls, st.Lookups)
	tb.addf("429s sent", "", "%d (quota) + %d (faults)", st.Throttled, st.FaultThrottle)
	tb.addf("retries per device", "all causes", "mean %.2f, p50 %.0f, p99 %.0f, max %.0f", r.retries.Mean, r.retries.P50, r.retries.P99, r.retries.Max)
	tb.addf("  of which after a 429", "", "%d total; client saw %d 429s", r.retries429, r.seen429)
	tb.addf("  of which transport/5xx", "", "%d", r.otherRetries)
	tb.addf("register time per device", "", "p50 %s, p99 %s, max %s", time.Duration(r.took.P50).Round(time.Second), time.Duration(r.took.P99).Round(time.Second), time.Duration(r.took.Max).Round(time.Second))
	tb.addf("early requests (hubsim)", "target 0", "%d before the 429's Retry-After; %d polls before the 202's retry-after", st.Early, st.EarlyPolls)
	tb.addf("early requests (client timing)", "target 0", "%d of %d retries after a 429 started sending before receipt + Retry-After", r.clientEarly, r.margins.N)
	tb.addf("margin past Retry-After", "client timing", "min %s, p50 %s, p99 %s, max %s", ms(r.margins.Min), ms(r.margins.P50), ms(r.margins.P99), ms(r.margins.Max))
	tb.addf("test process peak RSS", "sim + clients", "%s", peakRSS())
	tb.addf("machine", "", "%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	if jitter {
		tb.addf("fleet planner: time to converge", "within 10%", "%s planner vs %s socket-level (%+.1f%%)", cmp.Planner.Converge.Round(100*time.Millisecond), cmp.Socket.Converge.Round(100*time.Millisecond), 100*cmp.ConvergeDiff)
		tb.addf("fleet planner: peak per window", "within 10%", "%d planner vs %d socket-level (%+.1f%%); planner ran in %s", cmp.Planner.PeakPerWindow, cmp.Socket.PeakPerWindow, 100*cmp.PeakDiff, planWall.Round(10*time.Millisecond))
	} else {
		tb.addf("fleet planner", "", "not compared: the planner has no jitter-off mode")
	}
	if len(r.errs) > 0 {
		tb.addf("failures", "", "%d devices: %s", len(r.errs), strings.Join(r.errs, "; "))
	}
	writeReport(t, "bench-fleet-storm.txt", tb.String())

	// The targets.
	if cmpErr != nil {
		t.Errorf("fleet planner vs the socket-level storm: %v", cmpErr)
	}
	if r.assigned != n {
		t.Errorf("%d of %d devices assigned", r.assigned, n)
	}
	if registered != n {
		t.Errorf("hub registries hold %d devices, want %d", registered, n)
	}
	if st.Early != 0 || st.EarlyPolls != 0 {
		t.Errorf("hubsim saw %d requests before their Retry-After and %d early polls", st.Early, st.EarlyPolls)
	}
	if r.clientEarly != 0 {
		t.Errorf("client timing: %d retries started before receipt + Retry-After", r.clientEarly)
	}
	if limit := peakTarget * float64(quota); float64(st.PeakPerWindow) > limit {
		t.Errorf("peak admissions per window %d > %.0f (1.2 × quota)", st.PeakPerWindow, limit)
	}
	if st.Throttled == 0 {
		t.Errorf("hubsim sent no 429: the quota did not bite, so the run proves nothing (raise %s or lower %s)", envStormDevices, envStormQuota)
	}
	// The client-side counts come from the dps client's "retrying" log
	// line; if it stopped matching, they would silently read zero.
	if r.seen429 == 0 && st.Throttled > 0 {
		t.Errorf("the client-side hook saw no 429 although hubsim sent %d: has sdk/dps changed its %q log message?", st.Throttled, msgRetrying)
	}
}

// idealConverge is how long n admissions take at the quota's smooth rate
// after the initial burst.
func idealConverge(n, quota int, window time.Duration) time.Duration {
	rest := n - quota/10 - 1
	if rest <= 0 {
		return 0
	}
	return time.Duration(float64(window) * float64(rest) / float64(quota))
}

// stormDevice is one simulated device. Its fields after track are written
// by the device's goroutine and read after wg.Wait.
type stormDevice struct {
	id, transport string
	client        *dps.Client
	track         *tracker

	began, ended time.Time
	hub          string
	err          error
}

// secondCount is one second of hubsim's DPS request counts.
type secondCount struct {
	Unix                int64
	Admitted, Throttled int
}

type stormResult struct {
	assigned                 int
	retries, took, margins   summary
	retries429, otherRetries int
	seen429, clientEarly     int
	peakAdmittedSecond       int
	peakRegisterWindow       int      // register requests, admitted or refused, in any window
	errs                     []string // a few failures, for the report
}

func analyzeStorm(devs []*stormDevice, secs []secondCount, window time.Duration) stormResult {
	var r stormResult
	retries := make([]float64, 0, len(devs))
	took := make([]float64, 0, len(devs))
	var margins []time.Duration
	for _, d := range devs {
		tr := d.track
		tr.mu.Lock()
		retries = append(retries, float64(tr.retries))
		r.retries429 += tr.retries429
		r.otherRetries += tr.retries - tr.retries429
		r.seen429 += tr.seen429
		r.clientEarly += tr.early
		margins = append(margins, tr.margins...)
		tr.mu.Unlock()
		took = append(took, float64(d.ended.Sub(d.began)))
		if d.err == nil && d.hub != "" {
			r.assigned++
		} else if len(r.errs) < 5 {
			r.errs = append(r.errs, d.id+": "+errString(d.err))
		}
	}
	r.retries = summarize(retries)
	r.took = summarize(took)
	r.margins = summarize(durations(margins))
	r.peakAdmittedSecond, r.peakRegisterWindow = peaks(secs, window)
	return r
}

// peaks returns the most admissions in one second and the most register
// requests (admitted plus refused) in any run of whole seconds as long as
// window. secs is in time order.
func peaks(secs []secondCount, window time.Duration) (perSecond, perWindow int) {
	w := int64((window + time.Second - 1) / time.Second)
	sum, j := 0, 0
	for _, s := range secs {
		perSecond = max(perSecond, s.Admitted)
		sum += s.Admitted + s.Throttled
		for secs[j].Unix <= s.Unix-w {
			sum -= secs[j].Admitted + secs[j].Throttled
			j++
		}
		perWindow = max(perWindow, sum)
	}
	return perSecond, perWindow
}

func errString(err error) string {
	if err == nil {
		return "no hub in the result"
	}
	return err.Error()
}

// msgRetrying is the message sdk/dps logs (at Info) before it waits to
// retry a request, with attributes "op", "wait" and "err".
const msgRetrying = "dps: retrying"

// requestWriteMin tells a request from connection chatter on the raw TCP
// connection under TLS: an HTTP request with its SAS header, an MQTT
// PUBLISH to a $dps topic and a TLS ClientHello are all larger; a TLS
// alert (close_notify), an MQTT PINGREQ, PUBACK or DISCONNECT are all
// smaller (24-31 bytes once sealed).
const requestWriteMin = 64

// tracker is one device's client-side view of its retries: the time of the
// last bytes it received, and after a 429 the earliest time the next
// request may start. Guarded by mu (the HTTP transport reads and writes on
// its own goroutines).
type tracker struct {
	mu         sync.Mutex
	lastRead   time.Time
	due        time.Time // zero when no 429 is pending
	retries    int       // waits before a retry, any cause
	retries429 int       // waits after a 429 with a Retry-After
	seen429    int       // 429 answers the client logged
	early      int       // next request started before due
	margins    []time.Duration
}

func (tr *tracker) read(now time.Time) {
	tr.mu.Lock()
	tr.lastRead = now
	tr.mu.Unlock()
}

func (tr *tracker) write(now time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.due.IsZero() {
		return
	}
	m := now.Sub(tr.due)
	if m < 0 {
		tr.early++
	}
	tr.margins = append(tr.margins, m)
	tr.due = time.Time{}
}

func (tr *tracker) retrying(err error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.retries++
	var se *dps.StatusError
	if errors.As(err, &se) && se.StatusCode == 429 {
		tr.seen429++
		if se.HasRetryAfter {
			tr.retries429++
			// The answer arrived no later than the last read; the next
			// request must not start before that plus Retry-After.
			tr.due = tr.lastRead.Add(se.RetryAfter)
		}
	}
}

// dialer wraps dial so the device's connections report their traffic.
func (tr *tracker) dialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &trackedConn{Conn: c, tr: tr}, nil
	}
}

type trackedConn struct {
	net.Conn
	tr *tracker
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.tr.read(time.Now())
	}
	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	if len(p) >= requestWriteMin {
		c.tr.write(time.Now())
	}
	return c.Conn.Write(p)
}

// trackHandler feeds the dps client's retry log line to a tracker and
// passes warnings and errors on to next.
type trackHandler struct {
	tr   *tracker
	next slog.Handler
}

func (h *trackHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo
}

func (h *trackHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == msgRetrying {
		var err error
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" {
				err, _ = a.Value.Any().(error)
				return false
			}
			return true
		})
		h.tr.retrying(err)
		return nil
	}
	if r.Level >= slog.LevelWarn && h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *trackHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &trackHandler{tr: h.tr, next: h.next.WithAttrs(as)}
}

func (h *trackHandler) WithGroup(name string) slog.Handler {
	return &trackHandler{tr: h.tr, next: h.next.WithGroup(name)}
}

// peakRSS is this process's peak resident set (VmHWM), or "n/a".
func peakRSS() string {
	v, err := procStatus("self", "VmHWM")
	if err != nil {
		return "n/a (" + err.Error() + ")"
	}
	return mib(v)
}

// procStatus reads a kB field of /proc/<pid>/status, in bytes.
func procStatus(pid, field string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s: unexpected %q", field, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", field, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no %s in /proc/%s/status", field, pid)
}

func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB" }
