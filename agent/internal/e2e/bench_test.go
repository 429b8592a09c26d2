package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/daemon"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// Benchmark targets (the acceptance numbers).
const (
	targetThroughputRatio = 0.40 // relay ≥ 0.40 × TCP chain
	targetCPUChain        = 3.0  // CPU-s per GB over the three processes
	targetCPUAgent        = 1.2  // CPU-s per GB, agent alone
	targetSetupP50        = 20 * time.Millisecond
	targetRSSIdle         = 10 << 20
	targetRSSBusy         = 16 << 20
	latencyStreams        = 200
	busyStreams           = 8
)

// TestBenchStreams is the device-streams benchmark; it runs only with
// PORTHOLE_BENCH=1 (PORTHOLE_BENCH_MIB sets the payload per direction,
// default 512). Run it without -race:
//
//	PORTHOLE_BENCH=1 go test -run TestBenchStreams -count=1 -v ./agent/internal/e2e/
//
// It prints a table and writes it to out/bench-streams.txt at the module
// root; with perf installed it also writes out/bench-streams-profile.txt
// (where the agent's and the chain's CPU goes).
func TestBenchStreams(t *testing.T) {
	size := benchSize(t, 512<<20)
	b := binaries(t)

	benchAddr := serveTCP(t, serveBench)
	helloAddr := serveTCP(t, func(c net.Conn) {
		if _, err := c.Write([]byte{'H'}); err == nil {
			_, _ = io.Copy(io.Discard, c)
		}
	})
	w := newWorld(t, "", map[string]string{"bench": benchAddr, "hello": helloAddr})
	w.dumpOnFailure()

	// Pacing for the measurement, not synchronisation: the idle RSS is read
	// after the connected agent has sat idle a while.
	time.Sleep(2 * time.Second)
	rssIdle, err := vmRSS(w.agent.pid())
	if err != nil {
		t.Fatal(err)
	}
	anonIdle, _ := statusField(w.agent.pid(), "RssAnon:")

	// porthole proxy: the operator's end of the relay path, one plain
	// stream per connection (--mux off): this benchmark is about device
	// streams (the busy part counts the agent's open streams; a mux stream
	// would stay open after its connections end). TestBenchMux compares
	// the multiplexed stream with it.
	proxyAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	proxy := startProc(t, w.dir, "porthole-proxy", nil, b.porthole,
		"proxy", deviceID, "-L", proxyAddr, "--stream", "bench", "--mux", "off", "--config", w.opConfig)
	waitListening(t, proxy, proxyAddr)

	// The TCP chain of the same shape: three forwarder processes.
	fwdAgent, fwdAgentAddr := startForwarder(t, w.dir, "fwd-3", benchAddr)
	fwdRelay, fwdRelayAddr := startForwarder(t, w.dir, "fwd-2", fwdAgentAddr)
	fwdProxy, fwdProxyAddr := startForwarder(t, w.dir, "fwd-1", fwdRelayAddr)

	relay := measureChain(t, "relay", proxyAddr, []*proc{proxy, w.sim.proc, w.agent}, size)
	tcp := measureChain(t, "tcp", fwdProxyAddr, []*proc{fwdProxy, fwdRelay, fwdAgent}, size)

	lat := setupLatency(t, w, latencyStreams)
	busy := busyRSS(t, w, proxyAddr, busyStreams)

	var profile string
	if perf, err := exec.LookPath("perf"); err == nil && os.Getenv("PORTHOLE_BENCH_PERF") != "0" {
		profile = profileChain(t, perf, w, proxyAddr, size/2, []*proc{proxy, w.sim.proc, w.agent})
	}

	table := formatTable(size, relay, tcp, lat, rssIdle, anonIdle, busy)
	t.Log("\n" + table)
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "bench-streams.txt"), []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	if profile != "" {
		if err := os.WriteFile(filepath.Join(out, "bench-streams-profile.txt"), []byte(profile), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	proxy.stop(t, true) // porthole proxy exits 0 on SIGTERM
	for _, f := range []*proc{fwdProxy, fwdRelay, fwdAgent} {
		f.stop(t, true)
	}
	w.stop()
}

// serveTCP runs handler for every connection to a loopback listener until
// the test ends (cleanup closes everything and waits).
func serveTCP(t testing.TB, handler func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{} // guarded by mu
	)
	wg.Add(1)
	go func() { // owned by the cleanup below
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() { // owned by the cleanup below
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				handler(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// payload is what the benchmark sends; random so nothing compresses it.
var payload = func() []byte {
	b := make([]byte, 256<<10)
	_, _ = rand.Read(b)
	return b
}()

// serveBench speaks the benchmark protocol: a command byte and a
// big-endian uint64 n; 'U': read n bytes then answer 'K'; 'D': send n
// bytes. Commands repeat until EOF.
func serveBench(c net.Conn) {
	var hdr [9]byte
	buf := make([]byte, 256<<10)
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := int64(binary.BigEndian.Uint64(hdr[1:]))
		switch hdr[0] {
		case 'U':
			if err := discardN(c, n, buf); err != nil {
				return
			}
			if _, err := c.Write([]byte{'K'}); err != nil {
				return
			}
		case 'D':
			if err := sendN(c, n); err != nil {
				return
			}
		default:
			return
		}
	}
}

func discardN(r io.Reader, n int64, buf []byte) error {
	for n > 0 {
		m, err := r.Read(buf[:min(int64(len(buf)), n)])
		n -= int64(m)
		if err != nil {
			if n > 0 {
				return err
			}
			return nil
		}
	}
	return nil
}

func sendN(w io.Writer, n int64) error {
	for n > 0 {
		m, err := w.Write(payload[:min(int64(len(payload)), n)])
		n -= int64(m)
		if err != nil {
			return err
		}
	}
	return nil
}

func command9(op byte, n int64) []byte {
	var hdr [9]byte
	hdr[0] = op
	binary.BigEndian.PutUint64(hdr[1:], uint64(n))
	return hdr[:]
}

// startForwarder runs testdata/tcpfwd to "to" and returns its address.
func startForwarder(t testing.TB, dir, name, to string) (*proc, string) {
	t.Helper()
	p := startProc(t, dir, name, nil, binaries(t).tcpfwd, "-listen", "127.0.0.1:0", "-to", to)
	var addr string
	testwait.For(t, startTimeout, name+" to log its listening address", func() (bool, string) {
		data, _ := os.ReadFile(p.logPath)
		if line, _, ok := strings.Cut(string(data), "\n"); ok {
			a, ok := strings.CutPrefix(line, "listening ")
			if !ok {
				t.Fatalf("%s: %s", name, line)
			}
			addr = a
			return true, ""
		}
		if p.exited() {
			t.Fatalf("%s did not start: exited (%v)\n%s", name, p.err, p.tail(10))
		}
		return false, p.tail(10)
	})
	return p, addr
}

// waitListening waits until addr accepts connections (the connection made
// to find out is closed at once).
func waitListening(t testing.TB, p *proc, addr string) {
	t.Helper()
	testwait.For(t, startTimeout, p.name+" listening on "+addr, func() (bool, string) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return true, ""
		}
		if p.exited() {
			t.Fatalf("%s not listening on %s: exited (%v)\n%s", p.name, addr, p.err, p.tail(10))
		}
		return false, err.Error() + "\n" + p.tail(10)
	})
}

// chainResult is one path's numbers.
type chainResult struct {
	name               string
	up, down           time.Duration // for size bytes each
	size               int64
	cpu                []float64 // CPU seconds per process for both directions
	procs              []string
	upMiBps, downMiBps float64
}

func (r chainResult) cpuPerGB(i int) float64 {
	gb := float64(2*r.size) / 1e9
	if i < 0 {
		var sum float64
		for _, c := range r.cpu {
			sum += c
		}
		return sum / gb
	}
	return r.cpu[i] / gb
}

// measureChain sends size bytes up and then down through one connection to
// entry and reads the CPU time the chain's processes spent.
func measureChain(t testing.TB, name, entry string, procs []*proc, size int64) chainResult {
	t.Helper()
	c, err := net.Dial("tcp", entry)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	transfer := func(op byte, n int64) time.Duration {
		start := time.Now()
		if _, err := c.Write(command9(op, n)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch op {
		case 'U':
			if err := sendN(c, n); err != nil {
				t.Fatalf("%s upload: %v", name, err)
			}
			if _, err := io.ReadFull(c, buf[:1]); err != nil || buf[0] != 'K' {
				t.Fatalf("%s upload ack: %v", name, err)
			}
		case 'D':
			if err := discardN(c, n, buf); err != nil {
				t.Fatalf("%s download: %v", name, err)
			}
		}
		return time.Since(start)
	}
	transfer('U', 16<<20) // warm up: TLS, buffers, TCP windows
	transfer('D', 16<<20)

	before := make([]int64, len(procs))
	for i, p := range procs {
		if before[i], err = cpuTicks(p.pid()); err != nil {
			t.Fatal(err)
		}
	}
	r := chainResult{name: name, size: size}
	r.up = transfer('U', size)
	r.down = transfer('D', size)
	for i, p := range procs {
		after, err := cpuTicks(p.pid())
		if err != nil {
			t.Fatal(err)
		}
		r.cpu = append(r.cpu, float64(after-before[i])/clockTick)
		r.procs = append(r.procs, p.name)
	}
	r.upMiBps, r.downMiBps = mibps(size, r.up), mibps(size, r.down)
	t.Logf("%s: up %.1f MiB/s, down %.1f MiB/s, CPU %v s (%v)", name, r.upMiBps, r.downMiBps, r.cpu, r.procs)
	return r
}

// latencyResult is the stream setup latency distribution.
type latencyResult struct {
	p50, p99, max time.Duration
	n, failed     int
}

// setupLatency opens n streams one after another with sdk/service from
// this process and times each from the service request to the target's
// first byte.
func setupLatency(t testing.TB, w *world, n int) latencyResult {
	t.Helper()
	c := w.sim.hubClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var ds []time.Duration
	res := latencyResult{n: n}
	one := make([]byte, 1)
	for range n {
		start := time.Now()
		conn, err := c.OpenStream(ctx, deviceID, "hello")
		if err != nil {
			res.failed++
			t.Logf("stream: %v", err)
			continue
		}
		_, err = io.ReadFull(conn, one)
		d := time.Since(start)
		conn.Close()
		if err != nil || one[0] != 'H' {
			res.failed++
			t.Logf("first byte: %v", err)
			continue
		}
		ds = append(ds, d)
	}
	if len(ds) == 0 {
		t.Fatal("no stream opened")
	}
	slices.Sort(ds)
	res.p50 = ds[len(ds)*50/100]
	res.p99 = ds[min(len(ds)-1, len(ds)*99/100)]
	res.max = ds[len(ds)-1]
	t.Logf("setup latency over %d streams: p50 %v p99 %v max %v (%d failed)", len(ds), res.p50, res.p99, res.max, res.failed)
	return res
}

// busyResult is the agent's memory with k streams moving data.
type busyResult struct {
	streams   int
	rss       int64 // max VmRSS sampled
	anon      int64 // RssAnon at that sample
	aggMiBps  float64
	idleAfter int64 // VmRSS a few seconds after they closed
}

// busyRSS runs k downloads through the proxy at once and samples the
// agent's VmRSS while they run.
func busyRSS(t testing.TB, w *world, proxyAddr string, k int) busyResult {
	t.Helper()
	var (
		wg    sync.WaitGroup
		total int64
		mu    sync.Mutex
		conns []net.Conn
	)
	for range k {
		c, err := net.Dial("tcp", proxyAddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write(command9('D', 1<<50)); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { // owned by busyRSS: waited for below
			defer wg.Done()
			buf := make([]byte, 256<<10)
			var n int64
			for {
				m, err := c.Read(buf)
				n += int64(m)
				if err != nil {
					break
				}
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	time.Sleep(2 * time.Second) // pacing, not synchronisation: the measurement starts after a warm-up at full speed
	res := busyResult{streams: k}
	start := time.Now()
	for range 30 {
		if rss, err := vmRSS(w.agent.pid()); err == nil && rss > res.rss {
			res.rss = rss
			res.anon, _ = statusField(w.agent.pid(), "RssAnon:")
		}
		time.Sleep(100 * time.Millisecond) // pacing, not synchronisation: 30 RSS samples over 3 s
	}
	elapsed := time.Since(start) + 2*time.Second
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	res.aggMiBps = float64(total) / (1 << 20) / elapsed.Seconds()
	w.waitAgent("without open streams", 30*time.Second, func(s *daemon.Status) bool { return s.Streams.Open == 0 })
	time.Sleep(3 * time.Second) // pacing, not synchronisation: the figure is the RSS 3 s after the streams closed
	res.idleAfter, _ = vmRSS(w.agent.pid())
	t.Logf("agent RSS with %d busy streams: %.1f MiB (%.0f MiB/s together); %.1f MiB 3 s after", k,
		float64(res.rss)/(1<<20), res.aggMiBps, float64(res.idleAfter)/(1<<20))
	return res
}

// profileChain records the three processes with perf while n bytes go up
// and down through the relay, and returns perf's report: by process, then
// the agent's and hubsim's top symbols.
func profileChain(t testing.TB, perf string, w *world, entry string, n int64, procs []*proc) string {
	t.Helper()
	data := filepath.Join(w.dir, "perf.data")
	pids := make([]string, len(procs))
	for i, p := range procs {
		pids[i] = strconv.Itoa(p.pid())
	}
	rec := startProc(t, w.dir, "perf-record", nil, perf, "record", "-F", "999", "-g", "-o", data, "-p", strings.Join(pids, ","))
	// Syscall and context-switch counts per process, alongside.
	stats := make([]*proc, len(procs))
	statFiles := make([]string, len(procs))
	for i, p := range procs {
		statFiles[i] = filepath.Join(w.dir, "perf-stat-"+p.name+".csv")
		stats[i] = startProc(t, w.dir, "perf-stat-"+p.name, nil, perf, "stat", "-x", ",", "-o", statFiles[i],
			"-e", "syscalls:sys_enter_write,syscalls:sys_enter_read,context-switches", "-p", pids[i])
	}
	// Pacing, not synchronisation: perf reports no readiness to wait for, so
	// give it a moment to fail fast (no permission, no events) before measuring.
	time.Sleep(500 * time.Millisecond)
	if rec.exited() {
		t.Logf("perf record failed: %v\n%s", rec.err, rec.tail(10))
		for _, s := range stats {
			s.kill()
		}
		return ""
	}
	measureChain(t, "relay (profiled)", entry, procs, n)
	for _, p := range append([]*proc{rec}, stats...) {
		p.signal(syscall.SIGINT)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			p.kill()
		}
	}
	var out strings.Builder
	fmt.Fprintf(&out, "perf profile of the relay path (%d MiB up, %d MiB down; 999 Hz)\n", n>>20, n>>20)
	fmt.Fprintf(&out, "\n===== syscalls and context switches per MiB moved (both directions) =====\n")
	for i, p := range procs {
		counts := parsePerfStat(statFiles[i])
		per := func(k string) string {
			v, ok := counts[k]
			if !ok {
				return "n/a"
			}
			return fmt.Sprintf("%.1f", v/float64(2*n>>20))
		}
		fmt.Fprintf(&out, "%-16s write %6s  read %6s  context switches %6s\n", p.name,
			per("syscalls:sys_enter_write"), per("syscalls:sys_enter_read"), per("context-switches"))
	}
	report := func(title string, limit int, args ...string) {
		cmd := exec.Command(perf, append([]string{"report", "-i", data, "--stdio"}, args...)...)
		cmd.Env = childEnv()
		b, err := cmd.Output()
		fmt.Fprintf(&out, "\n===== %s =====\n", title)
		if err != nil {
			fmt.Fprintf(&out, "perf report: %v\n", err)
			return
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		lines := 0
		for sc.Scan() && lines < limit {
			line := strings.TrimRight(sc.Text(), " -")
			if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
				continue
			}
			out.WriteString(line + "\n")
			lines++
		}
	}
	report("CPU by process (share of all samples)", 10, "--no-children", "--sort", "comm", "-g", "none")
	for _, p := range procs {
		c := commOf(p)
		report(p.name+": kernel vs user (share of the process)", 6, "--no-children", "--comm", c, "--percentage", "relative", "--sort", "dso", "-g", "none")
		report(p.name+": self time by symbol", 25, "--no-children", "--comm", c, "--percentage", "relative", "--sort", "symbol", "-g", "none", "--percent-limit", "1")
		report(p.name+": inclusive time by function (callers of the above)", 40, "--children", "--comm", c, "--percentage", "relative", "--sort", "symbol", "-g", "none", "--percent-limit", "4")
	}
	return out.String()
}

// parsePerfStat reads "perf stat -x ," output: value,unit,event,….
func parsePerfStat(path string) map[string]float64 {
	m := map[string]float64{}
	data, err := os.ReadFile(path)
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 || strings.HasPrefix(line, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			m[f[2]] = v
		}
	}
	return m
}

// commOf is the process's command name as perf records it.
func commOf(p *proc) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid()) + "/comm")
	if err != nil {
		return filepath.Base(p.cmd.Path)
	}
	return strings.TrimSpace(string(b))
}

func formatTable(size int64, relay, tcp chainResult, lat latencyResult, rssIdle, anonIdle int64, busy busyResult) string {
	var b strings.Builder
	mark := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "MISSED"
	}
	ratioUp := relay.upMiBps / tcp.upMiBps
	ratioDown := relay.downMiBps / tcp.downMiBps
	fmt.Fprintf(&b, "porthole device-streams benchmark (%s, %s/%s, %d CPUs, %s)\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(&b, "one connection, %d MiB up then %d MiB down, loopback\n", size>>20, size>>20)
	fmt.Fprintf(&b, "relay: client -> porthole proxy -> hubsim (TLS WebSocket relay) -> porthole-agent -> target\n")
	fmt.Fprintf(&b, "tcp:   client -> tcpfwd -> tcpfwd -> tcpfwd -> target (plain TCP, 64 KiB user-space copy)\n\n")
	fmt.Fprintf(&b, "%-34s %12s %12s %8s   %-22s %s\n", "", "relay", "tcp chain", "ratio", "target", "")
	fmt.Fprintf(&b, "%-34s %12.1f %12.1f %8.2f   %-22s %s\n", "throughput up (MiB/s)", relay.upMiBps, tcp.upMiBps, ratioUp,
		fmt.Sprintf(">= %.2fx tcp", targetThroughputRatio), mark(ratioUp >= targetThroughputRatio))
	fmt.Fprintf(&b, "%-34s %12.1f %12.1f %8.2f   %-22s %s\n", "throughput down (MiB/s)", relay.downMiBps, tcp.downMiBps, ratioDown,
		fmt.Sprintf(">= %.2fx tcp", targetThroughputRatio), mark(ratioDown >= targetThroughputRatio))
	fmt.Fprintf(&b, "%-34s %12.2f %12.2f %8s   %-22s %s\n", "CPU-s/GB, 3 processes", relay.cpuPerGB(-1), tcp.cpuPerGB(-1), "",
		fmt.Sprintf("<= %.1f", targetCPUChain), mark(relay.cpuPerGB(-1) <= targetCPUChain))
	for i := range relay.procs {
		label := fmt.Sprintf("  %s / %s", relay.procs[i], tcp.procs[i])
		line := fmt.Sprintf("%-34s %12.2f %12.2f %8s", label, relay.cpuPerGB(i), tcp.cpuPerGB(i), "")
		if i == len(relay.procs)-1 {
			line += fmt.Sprintf("   %-22s %s", fmt.Sprintf("agent <= %.1f", targetCPUAgent), mark(relay.cpuPerGB(i) <= targetCPUAgent))
		}
		b.WriteString(line + "\n")
	}
	fmt.Fprintf(&b, "%-34s %12s %12s %8s   %-22s %s\n", fmt.Sprintf("setup p50 / p99 (ms, %d streams)", lat.n),
		fmt.Sprintf("%.1f / %.1f", ms(lat.p50), ms(lat.p99)), "", "",
		fmt.Sprintf("p50 <= %v", targetSetupP50), mark(lat.p50 <= targetSetupP50 && lat.failed == 0))
	if lat.failed > 0 {
		fmt.Fprintf(&b, "  (%d of %d streams failed)\n", lat.failed, lat.n)
	}
	fmt.Fprintf(&b, "%-34s %12.1f %12s %8s   %-22s %s\n", "agent RSS idle (MiB)", mib(rssIdle), "", "",
		fmt.Sprintf("<= %d MiB", targetRSSIdle>>20), mark(rssIdle <= targetRSSIdle))
	fmt.Fprintf(&b, "%-34s %12.1f\n", "  of which anonymous (MiB)", mib(anonIdle))
	fmt.Fprintf(&b, "%-34s %12.1f %12s %8s   %-22s %s\n", fmt.Sprintf("agent RSS, %d busy streams (MiB)", busy.streams), mib(busy.rss), "", "",
		fmt.Sprintf("<= %d MiB", targetRSSBusy>>20), mark(busy.rss <= targetRSSBusy))
	fmt.Fprintf(&b, "%-34s %12.1f\n", "  of which anonymous (MiB)", mib(busy.anon))
	fmt.Fprintf(&b, "%-34s %12.1f\n", "  (8 streams together, MiB/s)", busy.aggMiBps)
	fmt.Fprintf(&b, "%-34s %12.1f\n", "agent RSS 3 s after (MiB)", mib(busy.idleAfter))
	fmt.Fprintf(&b, "\nGB = 1e9 bytes; CPU from /proc/<pid>/stat utime+stime over both directions.\n")
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(n int64) float64        { return float64(n) / (1 << 20) }

// benchSize gates a benchmark on PORTHOLE_BENCH=1 and returns the bytes to
// move each way: def, or PORTHOLE_BENCH_MIB MiB.
func benchSize(t *testing.T, def int64) int64 {
	t.Helper()
	if os.Getenv("PORTHOLE_BENCH") != "1" {
		t.Skip("benchmark: set PORTHOLE_BENCH=1 (make bench)")
	}
	requireLinux(t)
	if v := os.Getenv("PORTHOLE_BENCH_MIB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("PORTHOLE_BENCH_MIB=%q", v)
		}
		return int64(n) << 20
	}
	return def
}
