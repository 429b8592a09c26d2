package fleetbench

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/iothub"
	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// The hub load drives its devices from client worker processes: the test
// binary runs itself again (TestHubLoadWorker, selected by envWorkerSpec),
// each worker owning a contiguous slice of the devices. At 10,000 devices
// in one process the clients were the bottleneck (hubsim used 0.2 cores),
// so the figure said nothing about hubsim.
const (
	// envLoadWorkers is the number of client processes (default 4).
	envLoadWorkers = "PORTHOLE_BENCH_HUB_WORKERS"
	// envWorkerSpec, set only in a worker, names its spec file (JSON,
	// workerSpec). A worker takes commands on stdin and reports on file
	// descriptor 3, one JSON object per line each way.
	envWorkerSpec = "PORTHOLE_BENCH_HUB_WORKER"

	defaultLoadWorkers = 4
)

// workerSpec is what a worker needs: how to reach the hub, its devices.
type workerSpec struct {
	Host     string   `json:"host"`
	CAFile   string   `json:"caFile"`
	MQTTAddr string   `json:"mqttAddr"` // every dial to port 8883 goes here
	First    int      `json:"first"`    // device index of Keys[0] (loadDeviceID)
	Fleet    int      `json:"fleet"`    // devices over all workers
	Keys     []string `json:"keys"`
}

// workerCmd is a command to a worker.
type workerCmd struct {
	Op  string `json:"op"`            // "connect", "send", "close"
	End int64  `json:"end,omitempty"` // send: stop sending at this time (Unix ns)
}

// workerReport answers a command.
type workerReport struct {
	Op       string  `json:"op"`
	Latency  []int64 `json:"latency,omitempty"`  // connect: ns per device, 0 = failed
	Attempts []int   `json:"attempts,omitempty"` // connect: per device
	Acked    []int   `json:"acked,omitempty"`    // send: per device
	Errors   int     `json:"errors,omitempty"`   // connect: devices failed; send: devices stopped on an error
	FirstErr string  `json:"firstErr,omitempty"`
	PeakRSS  int64   `json:"peakRSS,omitempty"` // close: VmHWM before closing, bytes
}

// TestHubLoadWorker is a hub load client worker; it is skipped unless the
// hub load started this process as one.
func TestHubLoadWorker(t *testing.T) {
	var spec workerSpec
	childSpec(t, envWorkerSpec, "a client worker", &spec)
	pem, err := os.ReadFile(spec.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", spec.CAFile)
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if _, port, _ := net.SplitHostPort(addr); port != "8883" {
			return nil, fmt.Errorf("worker: dial %s: not the MQTT port", addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, spec.MQTTAddr)
	}
	report := os.NewFile(3, "report")
	if report == nil {
		t.Fatal("no report descriptor (fd 3)")
	}
	defer report.Close()
	enc := json.NewEncoder(report)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := newInProcessClients(spec.Host, spec.First, spec.Keys, roots, dial)
	defer cl.close()

	profiled := false
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var cmd workerCmd
		if err := json.Unmarshal(sc.Bytes(), &cmd); err != nil {
			t.Fatalf("command %q: %v", sc.Text(), err)
		}
		var rep workerReport
		rep.Op = cmd.Op
		switch cmd.Op {
		case "connect":
			lat, att, failed, first := cl.connect(ctx)
			rep.Attempts, rep.Errors, rep.FirstErr = att, failed, first
			for _, d := range lat {
				rep.Latency = append(rep.Latency, int64(d))
			}
		case "send":
			stopProfile := profileFirstSend(t, &profiled, spec)
			rep.Acked, rep.Errors, rep.FirstErr = cl.send(ctx, time.Unix(0, cmd.End))
			stopProfile()
		case "close":
			rep.PeakRSS, _ = procStatus("self", "VmHWM")
			cl.close()
		default:
			t.Fatalf("unknown command %q", cmd.Op)
		}
		if err := enc.Encode(rep); err != nil {
			t.Fatalf("report: %v", err)
		}
		if cmd.Op == "close" {
			return
		}
	}
	// stdin ended without "close": the hub load is gone; the deferred
	// close ends the clients.
}

// profileFirstSend starts a CPU profile of this worker's first telemetry
// round when the hub load saves profiles (envLoadProfile), as
// cpu-clients-<fleet size>-<first device>.pb.gz; the returned func stops it.
func profileFirstSend(t *testing.T, profiled *bool, spec workerSpec) func() {
	dir := os.Getenv(envLoadProfile)
	if dir == "" || *profiled {
		return func() {}
	}
	*profiled = true
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("cpu-clients-%d-%d.pb.gz", spec.Fleet, spec.First)))
	if err != nil {
		t.Logf("worker CPU profile: %v", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		t.Logf("worker CPU profile: %v", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			t.Logf("worker CPU profile: %v", err)
		}
	}
}

// inProcessClients are sdk/iothub clients in this process.
type inProcessClients struct {
	host    string
	first   int
	keys    []string
	roots   *x509.CertPool
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	clients []*iothub.Client
	next    []int // per device: the sequence number its next message carries
}

func newInProcessClients(host string, first int, keys []string, roots *x509.CertPool, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *inProcessClients {
	return &inProcessClients{host: host, first: first, keys: keys, roots: roots, dial: dial, clients: make([]*iothub.Client, len(keys)), next: make([]int, len(keys))}
}

// connectPolicy is how a load's device retries its hub connection: the
// agent's hub policy (first retry after 5–10 s, the ceiling doubling up to
// 60 s, full jitter above the floor), so a storm against the hub's
// device-connections throttle (CONNACK 3 over 100/s) drains the way a
// fleet of agents would. A device gives up after 10 minutes.
var connectPolicy = retry.Policy{MaxBackoff: 60 * time.Second, GiveUpAfter: 10 * time.Minute}

// connect dials every device at the same instant, each retrying with
// connectPolicy, and returns each one's latency (0 when it failed),
// attempts, the number that failed and the first error.
func (c *inProcessClients) connect(ctx context.Context) ([]time.Duration, []int, int, string) {
	n := len(c.keys)
	latency := make([]time.Duration, n)
	attempts := make([]int, n)
	var failed atomic.Int32
	var firstErr atomic.Value
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := iothub.Config{HostName: c.host, DeviceID: loadDeviceID(c.first + i), SharedAccessKey: c.keys[i], RootCAs: c.roots, DialContext: c.dial}
			<-start
			began := time.Now()
			err := retry.Do(ctx, connectPolicy, func(ctx context.Context) error {
				attempts[i]++
				cl, err := iothub.Dial(ctx, cfg)
				c.clients[i] = cl
				return err
			})
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("device %d: %v", c.first+i, err))
				return
			}
			latency[i] = time.Since(began)
		}()
	}
	close(start)
	wg.Wait()
	s, _ := firstErr.Load().(string)
	return latency, attempts, int(failed.Load()), s
}

// send has each connected device send QoS 1 messages back to back (one
// in flight; the body is its sequence number, counting on from the last
// send) until end (at least one each, however late the command came), and returns the acknowledged count per device, how many
// devices stopped on an error and the first error.
func (c *inProcessClients) send(ctx context.Context, end time.Time) ([]int, int, string) {
	acked := make([]int, len(c.clients))
	var sendErrs atomic.Int32
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for i, cl := range c.clients {
		if cl == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first := true; first || time.Now().Before(end); first = false { // at least one each
				if err := cl.SendEvent(ctx, strconv.AppendInt(nil, int64(c.next[i]), 10)); err != nil {
					sendErrs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					return
				}
				c.next[i]++
				acked[i]++
			}
		}()
	}
	wg.Wait()
	s, _ := firstErr.Load().(string)
	return acked, int(sendErrs.Load()), s
}

// close closes the clients concurrently and forgets them. Idempotent.
func (c *inProcessClients) close() { closeAll(c.clients) }

// childProc is this test binary re-run as one of its tests (a client
// worker, the floor server): it takes commands on stdin and reports on
// file descriptor 3.
type childProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stderr  *tailBuffer
	exited  chan struct{} // closed by its waiter goroutine
	waitErr error
}

// startChild re-runs the test binary as test, its spec written to specFile
// (0600: it may hold device keys) and named by the environment variable
// envName. It returns the child and the read end of its report pipe,
// which the caller reads and closes.
func startChild(test, envName, specFile string, spec any) (*childProc, *os.File, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(specFile, b, 0o600); err != nil {
		return nil, nil, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	p := &childProc{stderr: &tailBuffer{max: 16 << 10}, exited: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.timeout=0")
	p.cmd.Env = append(os.Environ(), envName+"="+specFile)
	p.cmd.ExtraFiles = []*os.File{pw} // fd 3 in the child
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	if p.stdin, err = p.cmd.StdinPipe(); err == nil {
		err = p.cmd.Start()
	}
	pw.Close() // the child has its copy
	if err != nil {
		pr.Close()
		return nil, nil, err
	}
	go func() { // owned by the child: ends when the process does
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	return p, pr, nil
}

// childSpec reads into spec the spec file startChild wrote for this
// process (named by envName), or skips the test when this process is no
// such child; role names the child in the skip message.
func childSpec(t *testing.T, envName, role string, spec any) {
	specFile := os.Getenv(envName)
	if specFile == "" {
		t.Skip(role + " of TestHubLoad; runs only when TestHubLoad starts it")
	}
	b, err := os.ReadFile(specFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, spec); err != nil {
		t.Fatal(err)
	}
}

func (p *childProc) pid() int { return p.cmd.Process.Pid }

// wait waits for the child to exit after its stdin was closed, killing it
// after 30 s; a kill or a failed exit is reported on t, as what.
func (p *childProc) wait(t *testing.T, what string) {
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("%s %d did not exit within 30 s; killed", what, p.pid())
	}
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) {
		t.Errorf("%s %d: %v\n%s", what, p.pid(), p.waitErr, strings.TrimSpace(p.stderr.String()))
	}
}

// workerProc is one client worker process.
type workerProc struct {
	*childProc
	first   int               // device index of its first device
	n       int               // its devices
	reports chan workerReport // from its reader goroutine; closed at EOF
}

// workerFleet drives devices through worker processes.
type workerFleet struct {
	procs []*workerProc
}

// startWorkers starts workers processes sharing the keys' devices, for
// the hub at host reachable at mqttAddr, trusting caFile.
func startWorkers(t *testing.T, ctx context.Context, workers int, host, caFile, mqttAddr string, keys []string) *workerFleet {
	t.Helper()
	workers = min(workers, len(keys))
	dir := t.TempDir()
	f := &workerFleet{}
	t.Cleanup(func() { f.stop(t) })
	for w := range workers {
		first, end := w*len(keys)/workers, (w+1)*len(keys)/workers
		spec := workerSpec{Host: host, CAFile: caFile, MQTTAddr: mqttAddr, First: first, Fleet: len(keys), Keys: keys[first:end]}
		child, pr, err := startChild("TestHubLoadWorker", envWorkerSpec, filepath.Join(dir, fmt.Sprintf("worker-%d.json", w)), spec)
		if err != nil {
			t.Fatalf("starting client worker: %v", err)
		}
		p := &workerProc{childProc: child, first: first, n: end - first, reports: make(chan workerReport, 4)}
		f.procs = append(f.procs, p)
		go func() { // owned by the worker: ends at its report pipe's EOF
			defer close(p.reports)
			defer pr.Close()
			dec := json.NewDecoder(pr)
			for {
				var r workerReport
				if err := dec.Decode(&r); err != nil {
					return
				}
				p.reports <- r
			}
		}()
	}
	return f
}

// pids are the workers' process ids.
func (f *workerFleet) pids() []int {
	out := make([]int, len(f.procs))
	for i, p := range f.procs {
		out[i] = p.pid()
	}
	return out
}

// do sends cmd to every worker at once and collects their reports.
func (f *workerFleet) do(ctx context.Context, cmd workerCmd) ([]workerReport, error) {
	line, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	line = append(line, '\n')
	for _, p := range f.procs {
		if _, err := p.stdin.Write(line); err != nil {
			return nil, fmt.Errorf("worker %d: %s: %w\n%s", p.pid(), cmd.Op, err, p.stderr)
		}
	}
	out := make([]workerReport, len(f.procs))
	for i, p := range f.procs {
		select {
		case r, ok := <-p.reports:
			if !ok {
				<-p.exited
				return nil, fmt.Errorf("worker %d ended during %s: %v\n%s", p.pid(), cmd.Op, p.waitErr, p.stderr)
			}
			if r.Op != cmd.Op {
				return nil, fmt.Errorf("worker %d answered %q to %q", p.pid(), r.Op, cmd.Op)
			}
			out[i] = r
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the workers' %s: %w", cmd.Op, ctx.Err())
		}
	}
	return out, nil
}

// connect dials every device of every worker at once.
func (f *workerFleet) connect(ctx context.Context, n int) (latency []time.Duration, attempts []int, failed int, firstErr string, err error) {
	reps, err := f.do(ctx, workerCmd{Op: "connect"})
	if err != nil {
		return nil, nil, 0, "", err
	}
	latency, attempts = make([]time.Duration, n), make([]int, n)
	for i, r := range reps {
		p := f.procs[i]
		if len(r.Latency) != p.n || len(r.Attempts) != p.n {
			return nil, nil, 0, "", fmt.Errorf("worker %d reported %d latencies for %d devices", p.pid(), len(r.Latency), p.n)
		}
		for k := range p.n {
			latency[p.first+k] = time.Duration(r.Latency[k])
			attempts[p.first+k] = r.Attempts[k]
		}
		failed += r.Errors
		if firstErr == "" {
			firstErr = r.FirstErr
		}
	}
	return latency, attempts, failed, firstErr, nil
}

// send makes every device send until end.
func (f *workerFleet) send(ctx context.Context, n int, end time.Time) (acked []int, sendErrs int, firstErr string, err error) {
	reps, err := f.do(ctx, workerCmd{Op: "send", End: end.UnixNano()})
	if err != nil {
		return nil, 0, "", err
	}
	acked = make([]int, n)
	for i, r := range reps {
		p := f.procs[i]
		if len(r.Acked) != p.n {
			return nil, 0, "", fmt.Errorf("worker %d reported %d counts for %d devices", p.pid(), len(r.Acked), p.n)
		}
		copy(acked[p.first:], r.Acked)
		sendErrs += r.Errors
		if firstErr == "" {
			firstErr = r.FirstErr
		}
	}
	return acked, sendErrs, firstErr, nil
}

// close closes every client and returns the workers' summed peak RSS.
func (f *workerFleet) close(ctx context.Context) (int64, error) {
	reps, err := f.do(ctx, workerCmd{Op: "close"})
	if err != nil {
		return 0, err
	}
	var peak int64
	for _, r := range reps {
		peak += r.PeakRSS
	}
	return peak, nil
}

// stop ends the workers: stdin closed (a worker then closes its clients
// and exits), killed after 30 s. Failures are reported on t.
func (f *workerFleet) stop(t *testing.T) {
	for _, p := range f.procs {
		_ = p.stdin.Close()
	}
	for _, p := range f.procs {
		p.wait(t, "client worker")
		for range p.reports { // drain until the reader goroutine ends
		}
	}
	f.procs = nil
}

// loadClients are the devices' clients of one hub load.
type loadClients interface {
	// connect dials every device at the same instant: latency per device
	// (0 when it failed), attempts, how many failed and the first error.
	connect(ctx context.Context) (latency []time.Duration, attempts []int, failed int, firstErr string, err error)
	// send has every connected device send QoS 1 telemetry until end.
	send(ctx context.Context, end time.Time) (acked []int, sendErrs int, firstErr string, err error)
	// close closes the clients (idempotent) and returns their processes'
	// peak RSS (0 in-process).
	close(ctx context.Context) (peakRSS int64, err error)
	// pids are the processes running the clients.
	pids() []int
	desc() string
}

// inProcessLoad runs the clients in the test process.
type inProcessLoad struct{ *inProcessClients }

func (c inProcessLoad) connect(ctx context.Context) ([]time.Duration, []int, int, string, error) {
	lat, att, failed, first := c.inProcessClients.connect(ctx)
	return lat, att, failed, first, nil
}

func (c inProcessLoad) send(ctx context.Context, end time.Time) ([]int, int, string, error) {
	acked, n, first := c.inProcessClients.send(ctx, end)
	return acked, n, first, nil
}

func (c inProcessLoad) close(context.Context) (int64, error) {
	c.inProcessClients.close()
	return 0, nil
}

func (c inProcessLoad) pids() []int  { return []int{os.Getpid()} }
func (c inProcessLoad) desc() string { return "all in the test process" }

// workerClients runs the clients in worker processes.
type workerClients struct {
	*workerFleet
	n      int
	closed bool
}

func (c *workerClients) connect(ctx context.Context) ([]time.Duration, []int, int, string, error) {
	return c.workerFleet.connect(ctx, c.n)
}

func (c *workerClients) send(ctx context.Context, end time.Time) ([]int, int, string, error) {
	return c.workerFleet.send(ctx, c.n, end)
}

func (c *workerClients) close(ctx context.Context) (int64, error) {
	if c.closed {
		return 0, nil
	}
	c.closed = true
	return c.workerFleet.close(ctx)
}

func (c *workerClients) desc() string {
	return fmt.Sprintf("in %d client processes (the test binary re-run as TestHubLoadWorker, ~%d devices each)", len(c.procs), c.n/max(len(c.procs), 1))
}

// sumCPU is the CPU time the processes have used together.
func sumCPU(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, pid := range pids {
		d, err := procCPU(pid)
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

// loadFigures are one hub load's headline figures, for comparing fleet
// sizes side by side.
type loadFigures struct {
	devices, online int
	acked           int
	took            time.Duration
	connects        float64 // connects per second in the storm
	hubCPU          float64 // hubsim CPU-seconds during telemetry; -1 unknown
	clientCPU       float64 // client CPU-seconds during telemetry; -1 unknown
	rssPerDevice    float64 // KiB; -1 unknown
	load0, load1    string
	roundRates      []float64 // msg/s of each telemetry round
}

func (f loadFigures) rate() float64 { return float64(f.acked) / f.took.Seconds() }

// median is the median round's msg/s.
func (f loadFigures) median() float64 { return summarize(f.roundRates).percentile(50) }

// roundNote lists the rounds' msg/s when there is more than one.
func roundNote(rates []float64) string {
	if len(rates) < 2 {
		return ""
	}
	parts := make([]string, len(rates))
	for i, r := range rates {
		parts[i] = fmt.Sprintf("%.0f", r)
	}
	return " (msg/s per round: " + strings.Join(parts, ", ") + ")"
}

// compareLoads puts the small and the large fleet side by side; the
// target: the large fleet's QoS 1 rate is at least the small one's.
func compareLoads(t *testing.T, small, large loadFigures) *table {
	tb := &table{title: fmt.Sprintf("porthole hub load: %d vs %d devices in one run (two hubsim processes, clients in worker processes, telemetry rounds alternating)", small.devices, large.devices)}
	cpu := func(f loadFigures) string {
		if f.hubCPU < 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1f CPU-s (%.2f cores) = %.0f msg per hubsim CPU-second", f.hubCPU, f.hubCPU/f.took.Seconds(), float64(f.acked)/f.hubCPU)
	}
	ccpu := func(f loadFigures) string {
		if f.clientCPU < 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1f CPU-s (%.2f cores)", f.clientCPU, f.clientCPU/f.took.Seconds())
	}
	rss := func(f loadFigures) string {
		if f.rssPerDevice < 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1f KiB", f.rssPerDevice)
	}
	for _, f := range []loadFigures{small, large} {
		tb.addf(fmt.Sprintf("%d devices: QoS 1 msg/s", f.devices), "acknowledged", "median round %.0f; overall %.0f (%d in %s)%s", f.median(), f.rate(), f.acked, f.took.Round(time.Millisecond), roundNote(f.roundRates))
		tb.addf(fmt.Sprintf("%d devices: hubsim CPU", f.devices), "during telemetry", "%s", cpu(f))
		tb.addf(fmt.Sprintf("%d devices: clients CPU", f.devices), "during telemetry", "%s", ccpu(f))
		tb.addf(fmt.Sprintf("%d devices: connect storm", f.devices), "", "%.0f connects/s", f.connects)
		tb.addf(fmt.Sprintf("%d devices: hubsim RSS per device", f.devices), "target ≤ 40 KiB", "%s", rss(f))
		tb.addf(fmt.Sprintf("%d devices: load average", f.devices), "during telemetry", "%s → %s", f.load0, f.load1)
	}
	ratio := large.median() / small.median()
	verdict := "met"
	if ratio < 1 {
		verdict = "NOT met"
	}
	tb.addf("msg/s ratio", "target ≥ 1.00", "%.2f (median round, %d devices / %d devices): %s; overall %.2f", ratio, large.devices, small.devices, verdict, large.rate()/small.rate())
	if small.hubCPU > 0 && large.hubCPU > 0 {
		tb.addf("msg per hubsim CPU-second ratio", "", "%.2f (%d devices / %d devices)", (float64(large.acked)/large.hubCPU)/(float64(small.acked)/small.hubCPU), large.devices, small.devices)
	}
	t.Log("\n" + tb.String())
	return tb
}

// compareBaseline puts the large fleet against this build next to the
// 1,000-device fleet against an earlier build's hubsim (bin), same run.
func compareBaseline(bin string, base, large loadFigures) *table {
	tb := &table{title: fmt.Sprintf("porthole hub load: %d devices on this build vs %d devices on the baseline build, same run, rounds alternating", large.devices, base.devices)}
	eff := func(f loadFigures) string {
		if f.hubCPU <= 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.0f msg per hubsim CPU-second", float64(f.acked)/f.hubCPU)
	}
	tb.addf("baseline hubsim", "", "%s", filepath.Base(bin))
	tb.addf(fmt.Sprintf("baseline, %d devices", base.devices), "QoS 1 msg/s", "median round %.0f%s; %s", base.median(), roundNote(base.roundRates), eff(base))
	tb.addf(fmt.Sprintf("this build, %d devices", large.devices), "QoS 1 msg/s", "median round %.0f%s; %s", large.median(), roundNote(large.roundRates), eff(large))
	ratio := large.median() / base.median()
	verdict := "met"
	if ratio < 1 {
		verdict = "NOT met"
	}
	tb.addf("msg/s ratio", "target ≥ 1.00", "%.2f (%d devices, this build / %d devices, baseline): %s", ratio, large.devices, base.devices, verdict)
	return tb
}

// TestWorkerFleet runs the hub load's client workers (this test binary
// re-run as TestHubLoadWorker) against an in-process hubsim with a few
// devices: connect, two sends whose sequence numbers continue, close. It
// runs in plain go test, so the protocol between the load and its workers
// is checked without PORTHOLE_BENCH.
func TestWorkerFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const n = 5
	sim := hubsimtest.New(t, hubsimtest.WithLogger(quietLogger(t)))
	hub := sim.Hub(loadHub)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = sim.CreateDevice(loadHub, loadDeviceID(i))
	}
	events, unsubscribe := hub.Subscribe(1 << 16) // drained after the sends: deep enough for them
	defer unsubscribe()
	ctx := benchContext(t, 2*time.Minute)
	f := startWorkers(t, ctx, 2, loadHub, sim.CAFile, sim.MQTTAddr, keys)
	latency, attempts, failed, firstErr, err := f.connect(ctx, n)
	if err != nil || failed != 0 {
		t.Fatalf("connect: %v; %d failed (%s)", err, failed, firstErr)
	}
	for i := range n {
		if latency[i] <= 0 || attempts[i] != 1 || !hub.Connected(loadDeviceID(i), "") {
			t.Errorf("device %d: latency %v, %d attempts, connected %v", i, latency[i], attempts[i], hub.Connected(loadDeviceID(i), ""))
		}
	}
	total := make([]int, n)
	for range 2 {
		acked, sendErrs, firstErr, err := f.send(ctx, n, time.Now().Add(200*time.Millisecond))
		if err != nil || sendErrs != 0 {
			t.Fatalf("send: %v; %d errors (%s)", err, sendErrs, firstErr)
		}
		for i, a := range acked {
			if a == 0 {
				t.Errorf("device %d: nothing acknowledged in a round", i)
			}
			total[i] += a
		}
	}
	if _, err := f.close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	// Every acknowledged message reached the hub once, numbered from 0 on
	// across both rounds.
	tap := newEventTap(func() {}, n)
	close(tap.done)
	want := 0
	for _, a := range total {
		want += a
	}
	testwait.For(t, time.Minute, "the hub's events for every acknowledged message", func() (bool, string) {
		for {
			select {
			case ev := <-events:
				tap.record(ev.DeviceID, ev.Body)
				continue
			default:
			}
			break
		}
		tap.mu.Lock()
		got := tap.total
		tap.mu.Unlock()
		return got >= want, fmt.Sprintf("%d of %d events", got, want)
	})
	if missing, extra, dups := tap.compare(total); missing != 0 || extra != 0 || dups != 0 {
		t.Errorf("%d missing, %d never acknowledged, %d twice", missing, extra, dups)
	}
	if d := hub.DroppedEvents(); d != 0 {
		t.Errorf("the hub dropped %d events for the test's subscription", d)
	}
}
