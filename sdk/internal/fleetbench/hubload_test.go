package fleetbench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/iothub"
	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/service"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

const (
	envLoadDevices  = "PORTHOLE_BENCH_HUB_DEVICES"  // devices (default 1000)
	envLoadDuration = "PORTHOLE_BENCH_HUB_DURATION" // telemetry period (default 20s)
	// envLoadConnectRate sets the process hubsim's limits.device_connections_per_second
	// (default: hubsim's, 100/s, IoT Hub's; 0 = unlimited). At 10,000 devices
	// the default throttle outlasts the devices' three connect attempts.
	envLoadConnectRate = "PORTHOLE_BENCH_HUB_CONNECT_RATE"
	// envHubsimBin names a hubsim binary to run instead of building one.
	envHubsimBin = "PORTHOLE_BENCH_HUBSIM"

	defaultLoadDevices  = 1000
	defaultLoadDuration = 20 * time.Second
	raceLoadDevices     = 300            // under -race (about 15 goroutines per device in-process)
	loadHub             = "hub-eu.local" // a hub of hubsim's default configuration

	phaseIdle      = "idle after start"
	phaseTelemetry = "telemetry"
)

// TestHubLoad runs the load twice. "process" is the measurement: hubsim is
// the shipped binary in its own process, so its resident memory is its
// own; its telemetry tap is read over hubsim's admin HTTP API
// (GET /hubsim/hubs/<host>/events). That tap drops events only for a
// reader more than its buffer behind (Hubsim-Tap-Buffer, 65536 by
// default), and says so in the stream with {"dropped":N} lines and in
// GET /hubsim/hubs (droppedEvents, eventTaps), so a drop is told apart
// from a lost message and both runs are strict: every acknowledged message
// tapped exactly once, no drop. "in-process" runs the same clients against
// hubsimtest and subscribes to the hub directly with a deep buffer.
func TestHubLoad(t *testing.T) {
	requireBench(t, "TestHubLoad")
	n := envInt(t, envLoadDevices, fleetSize(t, defaultLoadDevices, raceLoadDevices))
	period := envDuration(t, envLoadDuration, defaultLoadDuration)
	var report strings.Builder
	t.Run("process", func(t *testing.T) {
		ctx := benchContext(t, 5*time.Minute+2*period)
		var extra []string
		if v := os.Getenv(envLoadConnectRate); v != "" {
			rate, err := strconv.ParseFloat(v, 64)
			if err != nil || rate < 0 {
				t.Fatalf("%s=%q: want a number ≥ 0", envLoadConnectRate, v)
			}
			cfg := filepath.Join(t.TempDir(), "hubsim.yaml")
			if err := os.WriteFile(cfg, []byte(fmt.Sprintf("limits:\n  device_connections_per_second: %g\n", rate)), 0o600); err != nil {
				t.Fatal(err)
			}
			extra = append(extra, "-config", cfg)
		}
		sim := startHubsimArgs(t, ctx, extra...)
		target := &hubTarget{
			desc:      fmt.Sprintf("the hubsim binary as its own process (pid %d), log level warn; tap over GET /hubsim/hubs/<host>/events", sim.pid()),
			roots:     sim.roots,
			dial:      sim.dial,
			serviceCS: sim.hubConnectionString(t, loadHub),
			pid:       sim.pid(),
			connected: func(ctx context.Context, _ int) (int, error) { return sim.connected(ctx, loadHub) },
			tap:       func(n int) *eventTap { return sim.tapEvents(t, ctx, loadHub, n) },
			stop:      sim.stop,
		}
		target.dropped = func() (int, error) { return sim.droppedEvents(ctx, loadHub) }
		tb, res := runHubLoad(t, ctx, target, n, period)
		report.WriteString(tb.String() + "\n")
		res.check(t, "the admin event tap")
	})
	t.Run("in-process", func(t *testing.T) {
		ctx := benchContext(t, 5*time.Minute+2*period)
		sim := hubsimtest.New(t, hubsimtest.WithLogger(quietLogger(t)))
		hub := sim.Hub(loadHub)
		target := &hubTarget{
			desc:      "hubsimtest in the test process (RSS below includes the clients); tap = hub.Subscribe(65536) drained by a goroutine",
			roots:     sim.CAPool,
			dial:      sim.DialContext,
			serviceCS: sim.HubConnectionString(loadHub),
			connected: func(_ context.Context, n int) (int, error) {
				c := 0
				for i := range n {
					if hub.Connected(loadDeviceID(i), "") {
						c++
					}
				}
				return c, nil
			},
			tap:     func(n int) *eventTap { return subscribeTap(t, hub, n) },
			dropped: func() (int, error) { return hub.DroppedEvents(), nil },
			stop:    func() error { sim.Close(); return nil },
		}
		tb, res := runHubLoad(t, ctx, target, n, period)
		report.WriteString(tb.String())
		res.check(t, "the in-process tap")
	})
	writeReport(t, "bench-hub-load.txt", report.String())
}

// hubTarget is the hub a load runs against.
type hubTarget struct {
	desc      string
	roots     *x509.CertPool
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	serviceCS string // iothubowner connection string of loadHub
	pid       int    // the hub's own process, 0 when in-process
	connected func(ctx context.Context, n int) (int, error)
	tap       func(n int) *eventTap
	dropped   func() (int, error) // events the hub dropped for its taps; called before stop
	stop      func() error        // stops the hub; must exit cleanly
}

// loadResult is what the tap saw against what the devices had
// acknowledged.
type loadResult struct {
	acked, tapped        int // acknowledged messages; telemetry events tapped
	missing, extra, dups int // see eventTap.compare
	dropped              int // events the hub dropped for the tap (its own count)
	streamDropped        int // the last {"dropped":N} in the stream; 0 in-process
	dropErr              error
}

// check fails the test unless the tap saw every acknowledged message
// exactly once and nothing was dropped.
func (r loadResult) check(t *testing.T, what string) {
	t.Helper()
	if r.dropErr != nil {
		t.Errorf("%s: reading the hub's drop count: %v", what, r.dropErr)
	}
	if r.tapped != r.acked || r.missing != 0 || r.extra != 0 || r.dups != 0 || r.dropped != 0 || r.streamDropped != 0 {
		t.Errorf("%s: %d events tapped for %d acknowledged messages (%d missing, %d tapped twice, %d never acknowledged); dropped: %d by the hub's count, %d in the stream",
			what, r.tapped, r.acked, r.missing, r.dups, r.extra, r.dropped, r.streamDropped)
	}
}

// runHubLoad creates n devices, connects them all at once, lets each send
// telemetry back to back for period, and checks and reports what happened.
func runHubLoad(t *testing.T, ctx context.Context, target *hubTarget, n int, period time.Duration) (*table, loadResult) {
	pid := target.pid
	if pid == 0 {
		pid = os.Getpid()
	}
	rss := newSampler(pid)
	t.Cleanup(rss.stop)
	rss.begin(phaseIdle)

	// Devices, created through the registry REST API like an operator would.
	svc, err := service.New(service.Config{ConnectionString: target.serviceCS, RootCAs: target.roots, DialContext: target.dial})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	keys := make([]string, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range keys {
		g.Go(func() error {
			d, err := svc.CreateDevice(gctx, loadDeviceID(i))
			if err != nil {
				return err
			}
			if d.Authentication == nil || d.Authentication.SymmetricKey == nil {
				return fmt.Errorf("device %s: no key in the answer", loadDeviceID(i))
			}
			keys[i] = d.Authentication.SymmetricKey.PrimaryKey
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("creating devices: %v", err)
	}
	rss.begin("devices created")

	tap := target.tap(n)

	// Connect: every device dials at the same instant.
	clients := make([]*iothub.Client, n)
	latency := make([]time.Duration, n)
	attempts := make([]int, n)
	var connectFailed atomic.Int32
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := iothub.Config{HostName: loadHub, DeviceID: loadDeviceID(i), SharedAccessKey: keys[i], RootCAs: target.roots, DialContext: target.dial}
			<-start
			began := time.Now()
			err := retry.Do(ctx, retry.Policy{MaxAttempts: 3}, func(ctx context.Context) error {
				attempts[i]++
				c, err := iothub.Dial(ctx, cfg)
				clients[i] = c
				return err
			})
			if err != nil {
				connectFailed.Add(1)
				t.Logf("device %d: %v", i, err)
				return
			}
			latency[i] = time.Since(began)
		}()
	}
	rss.begin("connect storm")
	connectStart := time.Now()
	close(start)
	wg.Wait()
	connectTook := time.Since(connectStart)
	defer closeAll(clients)
	rss.begin("connected")
	online, err := target.connected(ctx, n)
	if err != nil {
		t.Errorf("hubsim's connected count: %v", err)
	}

	// Telemetry: each device sends QoS 1 messages back to back (one in
	// flight) until the period ends; the body is its sequence number.
	acked := make([]int, n)
	var sendErrs atomic.Int32
	var firstSendErr atomic.Value
	rss.begin(phaseTelemetry)
	sendStart := time.Now()
	end := sendStart.Add(period)
	cpu0, cpuErr := procCPU(pid)
	self0, selfErr := procCPU(os.Getpid())
	load0 := loadAvg()
	for i, c := range clients {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; time.Now().Before(end); seq++ {
				if err := c.SendEvent(ctx, strconv.AppendInt(nil, int64(seq), 10)); err != nil {
					sendErrs.Add(1)
					firstSendErr.CompareAndSwap(nil, err.Error())
					return
				}
				acked[i]++
			}
		}()
	}
	wg.Wait()
	sendTook := time.Since(sendStart)
	cpu1, cpuErr1 := procCPU(pid)
	self1, selfErr1 := procCPU(os.Getpid())
	load1 := loadAvg()
	closeAll(clients)
	rss.begin("clients closed")

	totalAcked := 0
	for _, a := range acked {
		totalAcked += a
	}
	res := loadResult{acked: totalAcked}
	res.tapped = tap.waitFor(ctx, totalAcked)
	hwm, hwmErr := procStatus(strconv.Itoa(pid), "VmHWM")
	res.dropped, res.dropErr = target.dropped()
	tap.stop()
	exitErr := target.stop()
	rss.stop()
	res.missing, res.extra, res.dups = tap.compare(acked)
	var dropLines int
	res.streamDropped, dropLines = tap.dropCount()

	// The report.
	conn := summarize(durations(nonZero(latency)))
	retried := 0
	for _, a := range attempts {
		if a > 1 {
			retried++
		}
	}
	tb := &table{title: "porthole hub load (issue \"IoT Hub\"): " + t.Name()}
	tb.addf("devices", "", "%d sdk/iothub clients, MQTT 3.1.1 over TLS, SAS keys, all in the test process", n)
	tb.addf("hubsim", "", "%s", target.desc)
	tb.addf("connected", "target all", "%d / %d (hubsim reports %d online; %d needed a second attempt)", n-int(connectFailed.Load()), n, online, retried)
	tb.addf("connect latency", "Dial → connected", "p50 %s, p99 %s, max %s, mean %s", ms(conn.P50), ms(conn.P99), ms(conn.Max), ms(conn.Mean))
	tb.addf("connect storm", "", "all %d dialled at once; last connected after %s (%.0f connects/s)", n, connectTook.Round(time.Millisecond), float64(n)/connectTook.Seconds())
	tb.addf("telemetry", "QoS 1 acknowledged", "%d messages in %s = %.0f msg/s (%.1f msg/s per device), one in flight per device", totalAcked, sendTook.Round(time.Millisecond), float64(totalAcked)/sendTook.Seconds(), float64(totalAcked)/sendTook.Seconds()/float64(n))
	tb.addf("send errors", "target 0", "%d%s", sendErrs.Load(), errNote(firstSendErr.Load()))
	tb.addf("event tap", "target = acked", "%d events tapped for %d acknowledged: %d acknowledged but missing, %d tapped twice (at-least-once resends), %d tapped but never acknowledged", res.tapped, totalAcked, res.missing, res.dups, res.extra)
	dropNote := fmt.Sprintf("%d (hub's count)", res.dropped)
	if res.dropErr != nil {
		dropNote = "unknown (" + res.dropErr.Error() + ")"
	}
	if target.pid != 0 {
		dropNote += fmt.Sprintf("; %d in the stream (%d {\"dropped\":N} lines; tap buffer %s)", res.streamDropped, dropLines, tap.buffer)
	}
	tb.addf("event tap drops", "target 0", "%s", dropNote)
	who := "hubsim"
	if target.pid == 0 {
		who = "test process"
	}
	if cpuErr == nil && cpuErr1 == nil {
		used := cpu1 - cpu0
		tb.addf(who+" CPU", "during telemetry", "%.2f cores busy (%.1f s user+system in %s, of %d CPUs) = %.0f messages per CPU-second", used.Seconds()/sendTook.Seconds(), used.Seconds(), sendTook.Round(time.Second), runtime.NumCPU(), float64(totalAcked)/used.Seconds())
	}
	if target.pid != 0 && selfErr == nil && selfErr1 == nil {
		used := self1 - self0
		tb.addf("clients CPU", "during telemetry", "%.2f cores busy (the test process)", used.Seconds()/sendTook.Seconds())
	}
	tb.addf("machine load average", "during telemetry", "%s → %s (other work on this shared machine takes CPU from the run)", load0, load1)
	for _, p := range rss.phases() {
		tb.addf(who+" RSS: "+p.name, "VmRSS", "max %s", mib(p.max))
	}
	if hwmErr == nil {
		tb.addf(who+" peak RSS", "VmHWM", "%s", mib(hwm))
	}
	if idle, loaded := rss.max(phaseIdle), rss.max(phaseTelemetry); target.pid != 0 && idle > 0 && loaded > 0 {
		// Per device that is connected: when the storm leaves some out
		// (the test fails then), dividing by n would flatter the figure.
		per := max(online, 1)
		tb.addf("hubsim RSS per device", "", "%.1f KiB ((telemetry max − idle) / %d connected)", float64(loaded-idle)/1024/float64(per), per)
	}
	if target.pid != 0 {
		tb.addf("test process peak RSS", "clients only", "%s", peakRSS())
	}
	tb.addf("machine", "", "%s/%s, %d CPUs, %s; hubsim and the clients share it", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	t.Log("\n" + tb.String())

	// The targets.
	if f := connectFailed.Load(); f != 0 {
		t.Errorf("%d devices did not connect", f)
	}
	if online != n {
		t.Errorf("hubsim reports %d devices online, want %d", online, n)
	}
	if sendErrs.Load() != 0 {
		t.Errorf("%d devices stopped on a send error, first: %v", sendErrs.Load(), firstSendErr.Load())
	}
	if totalAcked == 0 {
		t.Error("no message was acknowledged")
	}
	if exitErr != nil {
		t.Errorf("hubsim did not exit cleanly: %v", exitErr)
	}
	return tb, res
}

func loadDeviceID(i int) string { return fmt.Sprintf("load-%04d", i) }

func nonZero(ds []time.Duration) []time.Duration {
	out := ds[:0:0]
	for _, d := range ds {
		if d > 0 {
			out = append(out, d)
		}
	}
	return out
}

func errNote(v any) string {
	if s, ok := v.(string); ok {
		return " (first: " + s + ")"
	}
	return ""
}

// closeAll closes the clients concurrently (each Close waits for its own
// goroutines) and forgets them, so a second call does nothing.
func closeAll(clients []*iothub.Client) {
	var wg sync.WaitGroup
	for i, c := range clients {
		if c == nil {
			continue
		}
		clients[i] = nil
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Close()
		}()
	}
	wg.Wait()
}

// hubsimProc is the hubsim binary running as a child process.
type hubsimProc struct {
	cmd    *exec.Cmd
	status hubsimStatus
	roots  *x509.CertPool
	http   *http.Client
	stderr *tailBuffer

	exited  chan struct{} // closed by the waiter goroutine (owned by startHubsim, ends when the process does)
	waitErr error         // set before exited closes
	stopped sync.Once
	stopErr error
}

// hubsimStatus is the part of hubsim's -status-file JSON this test reads
// (documented in hubsim/cmd/hubsim).
type hubsimStatus struct {
	CAFile     string `json:"ca_file"`
	AdminToken string `json:"admin_token"` // Bearer credential of /hubsim/…
	Ports      struct {
		HTTPS int `json:"https"`
		MQTT  int `json:"mqtt"`
	} `json:"ports"`
	Hubs []struct {
		HostName                string `json:"hostname"`
		ServiceConnectionString string `json:"service_connection_string"`
	} `json:"hubs"`
}

// startHubsim builds hubsim (once per test binary run; go's build cache
// makes it quick after the first time) and starts it on loopback with free
// ports, waiting for its status file.
func startHubsim(t *testing.T, ctx context.Context) *hubsimProc {
	t.Helper()
	return startHubsimArgs(t, ctx)
}

// startHubsimArgs is startHubsim with more command-line arguments.
func startHubsimArgs(t *testing.T, ctx context.Context, extra ...string) *hubsimProc {
	t.Helper()
	dir := t.TempDir()
	bin := os.Getenv(envHubsimBin)
	if bin == "" {
		bin = filepath.Join(dir, "hubsim")
		bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(bctx, "go", "build", "-o", bin, "github.com/porthole-iot/porthole/hubsim/cmd/hubsim").CombinedOutput()
		if err != nil {
			t.Fatalf("building hubsim: %v\n%s", err, out)
		}
	}
	statusFile := filepath.Join(dir, "status.json")
	p := &hubsimProc{stderr: &tailBuffer{max: 16 << 10}, exited: make(chan struct{})}
	args := append([]string{"-listen", "127.0.0.1", "-https-port", "0", "-mqtt-port", "0",
		"-state-dir", filepath.Join(dir, "state"), "-status-file", statusFile, "-log-level", "warn"}, extra...)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = io.Discard // the banner holds connection strings; the status file has them too
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting hubsim: %v", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Logf("hubsim: %v", err)
		}
		if s := p.stderr.String(); s != "" {
			t.Logf("hubsim stderr (last %d bytes):\n%s", len(s), s)
		}
	})

	testwait.For(t, time.Minute, "hubsim's status file with its ports", func() (bool, string) {
		b, err := os.ReadFile(statusFile)
		if err == nil && json.Unmarshal(b, &p.status) == nil && p.status.Ports.HTTPS != 0 {
			return true, ""
		}
		select {
		case <-p.exited:
			t.Fatalf("hubsim exited before serving: %v\n%s", p.waitErr, p.stderr)
		default:
		}
		if err := ctx.Err(); err != nil {
			t.Fatal(err)
		}
		if err != nil {
			return false, err.Error() + "\n" + p.stderr.String()
		}
		return false, fmt.Sprintf("%q\n%s", b, p.stderr.String())
	})
	pem, err := os.ReadFile(p.status.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	p.roots = x509.NewCertPool()
	if !p.roots.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", p.status.CAFile)
	}
	p.http = &http.Client{Transport: &http.Transport{DialContext: p.dial, TLSClientConfig: &tls.Config{RootCAs: p.roots, MinVersion: tls.VersionTLS12}}}
	t.Cleanup(p.http.CloseIdleConnections)
	return p
}

func (p *hubsimProc) pid() int { return p.cmd.Process.Pid }

// dial reaches hubsim whatever host name is asked for: 443 → its HTTPS
// port, 8883 → its MQTT port. It refuses other ports.
func (p *hubsimProc) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	switch port {
	case "443":
		port = strconv.Itoa(p.status.Ports.HTTPS)
	case "8883":
		port = strconv.Itoa(p.status.Ports.MQTT)
	default:
		return nil, fmt.Errorf("fleetbench: dial %s: not a hubsim port", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
}

func (p *hubsimProc) hubConnectionString(t *testing.T, host string) string {
	t.Helper()
	for _, h := range p.status.Hubs {
		if h.HostName == host {
			return h.ServiceConnectionString
		}
	}
	t.Fatalf("hubsim has no hub %s", host)
	return ""
}

// hubsimHub is the part of GET /hubsim/hubs this test reads
// (hubsim/internal/admin).
type hubsimHub struct {
	HostName      string `json:"hostName"`
	Connected     int    `json:"connected"`
	DroppedEvents int    `json:"droppedEvents"`
}

// hubInfo asks hubsim's admin API about hub.
func (p *hubsimProc) hubInfo(ctx context.Context, hub string) (hubsimHub, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+hub+"/hubsim/hubs", nil)
	if err != nil {
		return hubsimHub{}, err
	}
	req.Header.Set("Authorization", "Bearer "+p.status.AdminToken)
	resp, err := p.http.Do(req)
	if err != nil {
		return hubsimHub{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return hubsimHub{}, fmt.Errorf("GET /hubsim/hubs: %s", resp.Status)
	}
	var hubs []hubsimHub
	if err := json.NewDecoder(resp.Body).Decode(&hubs); err != nil {
		return hubsimHub{}, err
	}
	for _, h := range hubs {
		if h.HostName == hub {
			return h, nil
		}
	}
	return hubsimHub{}, fmt.Errorf("no hub %s in /hubsim/hubs", hub)
}

// connected asks hubsim's admin API how many devices of hub are online.
func (p *hubsimProc) connected(ctx context.Context, hub string) (int, error) {
	h, err := p.hubInfo(ctx, hub)
	return h.Connected, err
}

// droppedEvents asks hubsim's admin API how many events hub has dropped
// for its taps (droppedEvents: every tap the hub has had, so this run's).
func (p *hubsimProc) droppedEvents(ctx context.Context, hub string) (int, error) {
	h, err := p.hubInfo(ctx, hub)
	return h.DroppedEvents, err
}

// stop ends hubsim with SIGTERM (a clean shutdown must exit 0) and waits
// for it, killing it after 30 s. Idempotent.
func (p *hubsimProc) stop() error {
	p.stopped.Do(func() {
		select {
		case <-p.exited:
			p.stopErr = fmt.Errorf("hubsim exited early: %v", p.waitErr)
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(30 * time.Second)
		defer t.Stop()
		select {
		case <-p.exited:
			p.stopErr = p.waitErr
		case <-t.C:
			_ = p.cmd.Process.Kill()
			<-p.exited
			p.stopErr = errors.New("hubsim did not stop within 30 s of SIGTERM; killed")
		}
	})
	return p.stopErr
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte // guarded by mu
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	if over := len(b.b) - b.max; over > 0 {
		b.b = append(b.b[:0], b.b[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.b)
}

// eventTap reads hubsim's telemetry tap (GET /hubsim/hubs/<host>/events,
// newline-delimited JSON) and records which (device, sequence number)
// pairs arrived, and the drops the stream reports.
type eventTap struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the reader goroutine (owned by the tap) ends
	buffer string        // the Hubsim-Tap-Buffer header; "" in-process

	dropped   int // the largest {"dropped":N} seen (N is cumulative); guarded by mu
	dropLines int // {"dropped":N} lines read; guarded by mu

	mu      sync.Mutex
	seen    [][]uint8 // seen[device][seq] = times tapped; guarded by mu
	total   int       // guarded by mu
	bad     int       // events not from this benchmark's devices; guarded by mu
	changed chan struct{}
	readErr error // guarded by mu
}

func (p *hubsimProc) tapEvents(t *testing.T, ctx context.Context, hub string, n int) *eventTap {
	t.Helper()
	tctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(tctx, http.MethodGet, "https://"+hub+"/hubsim/hubs/"+hub+"/events", nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.status.AdminToken)
	resp, err := p.http.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("event tap: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		t.Fatalf("event tap: %s", resp.Status)
	}
	// The hub subscribed before it answered: from here on nothing is missed
	// unless the tap falls behind.
	tap := newEventTap(cancel, n)
	tap.buffer = resp.Header.Get("Hubsim-Tap-Buffer") // hubsim/internal/hub tap.go
	go func() {
		defer close(tap.done)
		defer resp.Body.Close()
		tap.read(resp.Body)
	}()
	t.Cleanup(tap.stop)
	return tap
}

// read parses the stream: an Event per line, or, told apart by having no
// deviceId, a {"dropped":N} line with the count of events this stream has
// missed so far (hubsim/internal/hub admin.go, TapDropped).
func (tap *eventTap) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var ev struct {
		DeviceID string `json:"deviceId"`
		Body     []byte `json:"body"`
		Dropped  *int   `json:"dropped"`
	}
	for sc.Scan() {
		ev.DeviceID, ev.Body, ev.Dropped = "", nil, nil
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			ev.DeviceID, ev.Dropped = "", nil // counted as an event not ours
		}
		if ev.DeviceID == "" && ev.Dropped != nil {
			tap.recordDropped(*ev.Dropped)
			continue
		}
		tap.record(ev.DeviceID, ev.Body)
	}
	tap.mu.Lock()
	tap.readErr = sc.Err()
	tap.mu.Unlock()
}

// record notes one tapped event.
func (tap *eventTap) record(deviceID string, body []byte) {
	dev, seq := -1, -1
	if s, found := strings.CutPrefix(deviceID, "load-"); found {
		if d, err := strconv.Atoi(s); err == nil {
			dev = d
		}
		if q, err := strconv.Atoi(string(bytes.TrimSpace(body))); err == nil {
			seq = q
		}
	}
	tap.mu.Lock()
	tap.total++
	if dev < 0 || dev >= len(tap.seen) || seq < 0 {
		tap.bad++
	} else {
		for len(tap.seen[dev]) <= seq {
			tap.seen[dev] = append(tap.seen[dev], 0)
		}
		if tap.seen[dev][seq] < 255 {
			tap.seen[dev][seq]++
		}
	}
	tap.mu.Unlock()
	select {
	case tap.changed <- struct{}{}:
	default:
	}
}

// recordDropped notes a {"dropped":n} line.
func (tap *eventTap) recordDropped(n int) {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	tap.dropLines++
	tap.dropped = max(tap.dropped, n)
}

// dropCount is the drops the stream reported, and in how many lines.
func (tap *eventTap) dropCount() (dropped, lines int) {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	return tap.dropped, tap.dropLines
}

// subscribeTap taps hub in-process with a deep buffer, drained by a
// goroutine owned by the tap.
func subscribeTap(t *testing.T, hub *hubsimtest.IoTHub, n int) *eventTap {
	events, unsubscribe := hub.Subscribe(1 << 16)
	ctx, cancel := context.WithCancel(context.Background())
	tap := newEventTap(cancel, n)
	go func() {
		defer close(tap.done)
		defer unsubscribe()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					return
				}
				tap.record(ev.DeviceID, ev.Body)
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(tap.stop)
	return tap
}

func newEventTap(cancel context.CancelFunc, n int) *eventTap {
	return &eventTap{cancel: cancel, done: make(chan struct{}), seen: make([][]uint8, n), changed: make(chan struct{}, 1)}
}

// waitFor waits until the tap has seen at least want events, or five
// seconds pass without a new one, and returns the count.
func (tap *eventTap) waitFor(ctx context.Context, want int) int {
	idle := time.NewTimer(5 * time.Second)
	defer idle.Stop()
	for {
		tap.mu.Lock()
		got := tap.total
		tap.mu.Unlock()
		if got >= want {
			return got
		}
		select {
		case <-tap.changed:
			if !idle.Stop() {
				<-idle.C
			}
			idle.Reset(5 * time.Second)
		case <-idle.C:
			return got
		case <-tap.done:
			tap.mu.Lock()
			defer tap.mu.Unlock()
			return tap.total
		case <-ctx.Done():
			return got
		}
	}
}

// stop ends the tap and waits for its reader. Idempotent.
func (tap *eventTap) stop() {
	tap.cancel()
	<-tap.done
}

// compare checks the tap against what each device had acknowledged:
// missing = acknowledged but never tapped, extra = tapped but never
// acknowledged (or not from these devices), dups = tapped more than once.
func (tap *eventTap) compare(acked []int) (missing, extra, dups int) {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	extra = tap.bad
	for dev, seen := range tap.seen {
		for seq, c := range seen {
			if c > 1 {
				dups += int(c) - 1
			}
			if c > 0 && seq >= acked[dev] {
				extra++
			}
		}
		for seq := range acked[dev] {
			if seq >= len(seen) || seen[seq] == 0 {
				missing++
			}
		}
	}
	return missing, extra, dups
}

// sampler records a process's VmRSS every 200 ms and keeps the largest
// value per phase.
type sampler struct {
	pid  string
	quit chan struct{}
	done chan struct{} // closed when the sampling goroutine (owned by the sampler) ends
	once sync.Once

	mu    sync.Mutex
	phase string           // current phase; guarded by mu
	order []string         // phases in order; guarded by mu
	peak  map[string]int64 // phase → max VmRSS; guarded by mu
}

func newSampler(pid int) *sampler {
	s := &sampler{pid: strconv.Itoa(pid), quit: make(chan struct{}), done: make(chan struct{}), peak: map[string]int64{}}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				s.sample()
			case <-s.quit:
				return
			}
		}
	}()
	return s
}

func (s *sampler) sample() {
	v, err := procStatus(s.pid, "VmRSS")
	if err != nil {
		return // the process is gone
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase != "" && v > s.peak[s.phase] {
		s.peak[s.phase] = v
	}
}

// begin starts a phase: samples from now on count for it. It samples at
// once, so that every phase has a value.
func (s *sampler) begin(name string) {
	s.mu.Lock()
	s.phase = name
	s.order = append(s.order, name)
	s.mu.Unlock()
	s.sample()
}

type phaseMax struct {
	name string
	max  int64
}

// phases lists each phase's largest sample, in order.
func (s *sampler) phases() []phaseMax {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]phaseMax, 0, len(s.order))
	for _, name := range s.order {
		out = append(out, phaseMax{name: name, max: s.peak[name]})
	}
	return out
}

func (s *sampler) max(name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak[name]
}

// stop ends sampling and waits. Idempotent.
func (s *sampler) stop() {
	s.once.Do(func() { close(s.quit) })
	<-s.done
}

// loadAvg is the one-minute load average, or "n/a".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "n/a"
}

// procCPU is the user+system CPU time a process has used, from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s, the value
// of USER_HZ on Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat format")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(u+s) * 10 * time.Millisecond, nil
}
