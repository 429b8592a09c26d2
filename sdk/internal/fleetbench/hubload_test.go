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
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/iothub"
	"github.com/porthole-iot/porthole/sdk/service"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

const (
	envLoadDevices  = "PORTHOLE_BENCH_HUB_DEVICES"  // devices (default 1000)
	envLoadDuration = "PORTHOLE_BENCH_HUB_DURATION" // telemetry period per fleet (default 20s)
	envLoadRounds   = "PORTHOLE_BENCH_HUB_ROUNDS"   // telemetry rounds the period is split into (default 4)
	// envLoadConnectRate sets the process hubsim's limits.device_connections_per_second
	// (default: hubsim's, 100/s, IoT Hub's; 0 = unlimited). The devices retry
	// refused connects the way agents do (connectPolicy), so at 10,000
	// devices the storm takes at least 100 s at the default.
	envLoadConnectRate = "PORTHOLE_BENCH_HUB_CONNECT_RATE"
	// envHubsimBin names a hubsim binary to run instead of building one.
	envHubsimBin = "PORTHOLE_BENCH_HUBSIM"
	// envHubsimBaseline names the hubsim binary of an earlier build (make
	// bench builds HUB_BASELINE's with .ci/baseline-hubsim): a 1,000-device
	// fleet runs against it in the same alternating rounds, so "msg/s at N
	// devices ≥ the 1,000-device figure of that build" is measured side by
	// side.
	envHubsimBaseline = "PORTHOLE_BENCH_HUB_BASELINE"
	// envHubsimGOGC sets GOGC for the hubsim process only (a tuning
	// experiment: the table says which was used).
	envHubsimGOGC = "PORTHOLE_BENCH_HUBSIM_GOGC"

	// hubsimConnectRate is hubsim's default device-connections throttle
	// (limits.device_connections_per_second; IoT Hub's S1 figure).
	hubsimConnectRate = 100.0

	defaultLoadDevices  = 1000
	defaultLoadDuration = 20 * time.Second
	defaultLoadRounds   = 4
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
	workers := envInt(t, envLoadWorkers, defaultLoadWorkers)
	requireOpenFiles(t, uint64(n)+1024)
	var report strings.Builder
	t.Run("process", func(t *testing.T) {
		// The fleet and, in the same run, the 1,000-device fleet it is
		// compared with, each against its own hubsim. Both stay connected
		// and their telemetry goes in alternating rounds (small, large,
		// large, small, …), so that load from other work on a shared
		// machine falls on both alike.
		sizes := []int{n}
		if n != defaultLoadDevices {
			sizes = []int{defaultLoadDevices, n}
		}
		baseline := os.Getenv(envHubsimBaseline)
		bins := make([]string, len(sizes))
		for k := range bins {
			bins[k] = os.Getenv(envHubsimBin)
		}
		if baseline != "" && len(sizes) == 2 {
			sizes, bins = append(sizes, defaultLoadDevices), append(bins, baseline)
		}
		ctx := benchContext(t, time.Duration(2*len(sizes))*(5*time.Minute+2*period)) // the floor doubles the fleets
		loads := make([]*hubLoad, len(sizes))
		for k, size := range sizes {
			isBaseline := k == 2
			var extra []string
			rate := hubsimConnectRate
			if isBaseline {
				rate = -1 // the earlier build's own default, if it has one
			}
			if v := os.Getenv(envLoadConnectRate); v != "" && !isBaseline {
				var err error
				rate, err = strconv.ParseFloat(v, 64)
				if err != nil || rate < 0 {
					t.Fatalf("%s=%q: want a number ≥ 0", envLoadConnectRate, v)
				}
				cfg := filepath.Join(t.TempDir(), "hubsim.yaml")
				if err := os.WriteFile(cfg, []byte(fmt.Sprintf("limits:\n  device_connections_per_second: %g\n", rate)), 0o600); err != nil {
					t.Fatal(err)
				}
				extra = append(extra, "-config", cfg)
			}
			if !isBaseline { // the earlier build may not have -pprof
				extra = append(extra, "-pprof", "127.0.0.1:0")
			}
			sim := startHubsimBin(t, ctx, bins[k], extra...)
			what := "the hubsim binary"
			if isBaseline {
				what = "the BASELINE hubsim binary (" + envHubsimBaseline + ")"
			}
			target := &hubTarget{
				connectRate: rate,
				desc:        fmt.Sprintf("%s as its own process (pid %d), log level warn; tap over GET /hubsim/hubs/<host>/events", what, sim.pid()),
				roots:       sim.roots,
				dial:        sim.dial,
				serviceCS:   sim.hubConnectionString(t, loadHub),
				pid:         sim.pid(),
				connected:   func(ctx context.Context, _ int) (int, error) { return sim.connected(ctx, loadHub) },
				tap:         func(n int) *eventTap { return sim.tapEvents(t, ctx, loadHub, n) },
				stop:        sim.stop,
				clients: func(keys []string) loadClients {
					mqtt := net.JoinHostPort("127.0.0.1", strconv.Itoa(sim.status.Ports.MQTT))
					return &workerClients{workerFleet: startWorkers(t, ctx, workers, loadHub, sim.status.CAFile, mqtt, keys), n: len(keys)}
				},
			}
			target.dropped = func() (int, error) { return sim.droppedEvents(ctx, loadHub) }
			if !isBaseline {
				target.memStats = sim.memStats
			}
			target.tapQueued = func(ctx context.Context) (int, error) {
				h, err := sim.hubInfo(ctx, loadHub)
				q := 0
				for _, tap := range h.EventTaps {
					q += tap.Queued
				}
				return q, err
			}
			if dir := os.Getenv(envLoadProfile); dir != "" && !isBaseline {
				target.saveProfiles = func(ctx context.Context, name string) error { return sim.saveProfiles(ctx, dir, name) }
				target.cpuProfile = func(ctx context.Context, devices, seconds int) error {
					return sim.saveCPUProfile(ctx, dir, devices, seconds)
				}
			}
			loads[k] = startHubLoad(t, ctx, target, size)
		}
		// The floor, in the same alternating rounds (see floor_test.go).
		var floors []*floorLoad
		if len(sizes) >= 2 && os.Getenv(envLoadFloor) != "0" {
			for _, size := range sizes[:2] {
				floors = append(floors, startFloorLoad(t, ctx, size, workers))
			}
		}
		var rounders []interface {
			round(ctx context.Context, d time.Duration)
		}
		for _, l := range loads {
			rounders = append(rounders, l)
		}
		for _, f := range floors {
			rounders = append(rounders, f)
		}
		rounds := envInt(t, envLoadRounds, defaultLoadRounds)
		for r := range rounds {
			for k := range rounders {
				if r%2 == 1 {
					k = len(rounders) - 1 - k
				}
				rounders[k].round(ctx, period/time.Duration(rounds))
			}
		}
		var figs []loadFigures
		for k, l := range loads {
			tb, res, fig := l.finish(ctx)
			report.WriteString(tb.String() + "\n")
			res.check(t, fmt.Sprintf("%d devices: the admin event tap", sizes[k]))
			figs = append(figs, fig)
		}
		if len(figs) >= 2 {
			report.WriteString(compareLoads(t, figs[0], figs[1]).String() + "\n")
		}
		if len(floors) == 2 {
			tb := compareFloor(figs[0], figs[1], floors[0].figures(ctx), floors[1].figures(ctx))
			t.Log("\n" + tb.String())
			report.WriteString(tb.String() + "\n")
		}
		if len(figs) == 3 {
			tb := compareBaseline(baseline, figs[2], figs[1])
			t.Log("\n" + tb.String())
			report.WriteString(tb.String() + "\n")
		}
	})
	t.Run("in-process", func(t *testing.T) {
		ctx := benchContext(t, 5*time.Minute+2*period)
		sim := hubsimtest.New(t, hubsimtest.WithLogger(quietLogger(t)))
		hub := sim.Hub(loadHub)
		target := &hubTarget{
			connectRate: hubsimConnectRate, // simconfig's default, which hubsimtest keeps
			desc:        "hubsimtest in the test process (RSS below includes the clients); tap = hub.Subscribe(65536) drained by a goroutine",
			roots:       sim.CAPool,
			dial:        sim.DialContext,
			serviceCS:   sim.HubConnectionString(loadHub),
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
			clients: func(keys []string) loadClients {
				return inProcessLoad{newInProcessClients(loadHub, 0, keys, sim.CAPool, sim.DialContext)}
			},
		}
		// A correctness check of the same load with everything in one
		// process (its RSS includes the clients): at most the 1,000-device
		// fleet.
		tb, res, _ := runHubLoad(t, ctx, target, min(n, defaultLoadDevices), period)
		report.WriteString(tb.String())
		res.check(t, "the in-process tap")
	})
	writeReport(t, "bench-hub-load.txt", report.String())
}

// retriedAttempts is how many connect attempts failed and were retried.
func retriedAttempts(attempts []int) int {
	n := 0
	for _, a := range attempts {
		n += max(a-1, 0)
	}
	return n
}

// peakPerSecond is the most devices that connected within any one second,
// from their latencies (all dialled at the same instant; 0 = failed).
func peakPerSecond(latency []time.Duration) int {
	done := nonZero(latency)
	slices.Sort(done)
	peak, lo := 0, 0
	for hi := range done {
		for done[hi]-done[lo] >= time.Second {
			lo++
		}
		peak = max(peak, hi-lo+1)
	}
	return peak
}

// hubTarget is the hub a load runs against.
type hubTarget struct {
	desc        string
	connectRate float64 // the hub's device-connections throttle per second; 0 = none, -1 = the binary's own default
	roots       *x509.CertPool
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	serviceCS   string // iothubowner connection string of loadHub
	pid         int    // the hub's own process, 0 when in-process
	connected   func(ctx context.Context, n int) (int, error)
	tap         func(n int) *eventTap
	dropped     func() (int, error) // events the hub dropped for its taps; called before stop
	stop        func() error        // stops the hub; must exit cleanly
	// memStats, when set, reads the hub process's memory breakdown.
	memStats func(ctx context.Context) (memBreakdown, error)
	// saveProfiles, when set, saves the hub's heap and goroutine profiles
	// as heap-<name>.pb.gz and goroutine-<name>.txt.
	saveProfiles func(ctx context.Context, name string) error
	// tapQueued, when set, reads how many events wait for the tap's reader
	// in the hub (they are part of its memory while they wait).
	tapQueued func(ctx context.Context) (int, error)
	// cpuProfile, when set, saves the hub's CPU profile over the given
	// seconds (the first telemetry round).
	cpuProfile func(ctx context.Context, devices, seconds int) error
	// clients makes the devices' clients (not yet connected).
	clients func(keys []string) loadClients
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

// hubLoad is one fleet's load against one hub: devices created and
// connected by startHubLoad, telemetry in one or more rounds, figures and
// checks from finish.
type hubLoad struct {
	t      *testing.T
	target *hubTarget
	n      int
	pid    int // the hub's process (this one when in-process)
	rss    *sampler
	svc    *service.Client
	tap    *eventTap

	clients      loadClients
	clientPIDs   []int
	latency      []time.Duration
	attempts     []int
	failedN      int
	firstConnErr string
	connectTook  time.Duration
	online       int
	memConnected memBreakdown
	memErr       error
	// memTelemetry is the memory in the middle of the first telemetry
	// round (memTelemetryErr: why not), written by a timer the round waits for.
	memTelemetry    memBreakdown
	memTelemetryErr error

	// Telemetry, summed over the rounds.
	acked []int // per device
	roundTotals
	tapQueuedMax int // the most events seen waiting for the tap's reader
	hubPeak      int // the most devices the hub counted as newly online within one second of the storm; -1 unknown
	load0, load1 string
}

// startHubLoad creates n devices through the registry REST API, taps the
// hub, and connects every device at the same instant.
func startHubLoad(t *testing.T, ctx context.Context, target *hubTarget, n int) *hubLoad {
	l := &hubLoad{t: t, target: target, n: n, pid: target.pid, acked: make([]int, n)}
	if l.pid == 0 {
		l.pid = os.Getpid()
	}
	l.rss = newSampler(l.pid)
	t.Cleanup(l.rss.stop)
	l.rss.begin(phaseIdle)

	// Devices, created through the registry REST API like an operator would.
	svc, err := service.New(service.Config{ConnectionString: target.serviceCS, RootCAs: target.roots, DialContext: target.dial})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
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
	l.rss.begin("devices created")

	l.tap = target.tap(n)

	// Connect: every device dials at the same instant.
	l.clients = target.clients(keys)
	t.Cleanup(func() { _, _ = l.clients.close(ctx) })
	l.clientPIDs = l.clients.pids()
	l.rss.begin("connect storm")
	connectStart := time.Now()
	stopCounting := l.countOnline(ctx)
	l.latency, l.attempts, l.failedN, l.firstConnErr, err = l.clients.connect(ctx)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	l.connectTook = time.Since(connectStart)
	l.hubPeak = stopCounting()
	if l.failedN > 0 {
		t.Logf("%d devices did not connect; first: %s", l.failedN, l.firstConnErr)
	}
	l.rss.begin("connected")
	if l.online, err = target.connected(ctx, n); err != nil {
		t.Errorf("hubsim's connected count: %v", err)
	}
	if target.memStats != nil {
		l.memConnected, l.memErr = target.memStats(ctx)
	}
	if target.saveProfiles != nil {
		if err := target.saveProfiles(ctx, strconv.Itoa(n)); err != nil {
			t.Errorf("saving hubsim's profiles: %v", err)
		}
	}
	return l
}

// countOnline samples the hub's own count of online devices every 100 ms
// until the returned func is called, which returns the largest rise within
// any one second: the storm's admissions per second as the hub saw them
// (the clients' view also holds TLS and scheduling delays); -1 when a
// sample failed.
func (l *hubLoad) countOnline(ctx context.Context) func() int {
	type sample struct {
		at time.Time
		n  int
	}
	var samples []sample
	failed := false
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { // owned by countOnline's caller: ends when it calls the returned func
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			n, err := l.target.connected(ctx, l.n)
			if err != nil {
				failed = true
			} else {
				samples = append(samples, sample{time.Now(), n})
			}
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	return func() int {
		close(stop)
		<-done
		if failed {
			return -1
		}
		peak, lo := 0, 0
		for hi := range samples {
			for samples[hi].at.Sub(samples[lo].at) > time.Second {
				lo++
			}
			peak = max(peak, samples[hi].n-samples[lo].n)
		}
		return peak
	}
}

// round lets each device send QoS 1 messages back to back (one in flight;
// the body is its sequence number, continuing from the last round) for d.
func (l *hubLoad) round(ctx context.Context, d time.Duration) {
	if len(l.roundRates) == 0 {
		l.rss.begin(phaseTelemetry)
		if l.target.cpuProfile != nil && d >= 2*time.Second {
			profiled := make(chan error, 1)
			go func() { profiled <- l.target.cpuProfile(ctx, l.n, int(d/time.Second)-1) }() // waited for below
			defer func() {
				if err := <-profiled; err != nil {
					l.t.Errorf("hubsim CPU profile: %v", err)
				}
			}()
		}
	}
	if l.target.tapQueued != nil {
		stop, done := make(chan struct{}), make(chan struct{})
		go func() { // samples the tap backlog during the round; waited for below
			defer close(done)
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-tick.C:
					if q, err := l.target.tapQueued(ctx); err == nil && q > l.tapQueuedMax {
						l.tapQueuedMax = q
					}
				case <-stop:
					return
				}
			}
		}()
		defer func() {
			close(stop)
			<-done
		}()
	}
	start := time.Now()
	before := markCPU(l.pid, l.clientPIDs)
	if l.load0 == "" {
		l.load0 = loadAvg()
	}
	if len(l.roundRates) == 0 && d >= 2*time.Second && (l.target.saveProfiles != nil || l.target.memStats != nil) {
		// Memory in the middle of the first round: what telemetry adds.
		profiled := make(chan error, 1)
		timer := time.AfterFunc(d/2, func() {
			var err error
			if l.target.memStats != nil {
				l.memTelemetry, l.memTelemetryErr = l.target.memStats(ctx)
			}
			if l.target.saveProfiles != nil {
				err = l.target.saveProfiles(ctx, strconv.Itoa(l.n)+"-telemetry")
			}
			profiled <- err
		})
		defer func() {
			if timer.Stop() {
				return
			}
			if err := <-profiled; err != nil {
				l.t.Errorf("hubsim heap profile during telemetry: %v", err)
			}
		}()
	}
	acked, sendErrN, firstSendErr, err := l.clients.send(ctx, start.Add(d))
	if err != nil {
		l.t.Fatalf("telemetry: %v", err)
	}
	took := time.Since(start)
	after := markCPU(l.pid, l.clientPIDs)
	l.load1 = loadAvg()
	total := 0
	for i, a := range acked {
		l.acked[i] += a
		total += a
	}
	l.add(total, took, before, after, sendErrN, firstSendErr)
}

// cpuMark is the CPU time a server process and the client processes have
// used so far.
type cpuMark struct {
	server, clients time.Duration
	err             error
}

func markCPU(server int, clients []int) cpuMark {
	s, err := procCPU(server)
	c, errC := sumCPU(clients)
	return cpuMark{s, c, errors.Join(err, errC)}
}

// roundTotals sums a load's telemetry rounds (hubsim's and the floor's).
type roundTotals struct {
	roundRates           []float64 // msg/s of each round
	messages             int       // acknowledged
	took                 time.Duration
	serverCPU, clientCPU time.Duration
	cpuErr               error // the first failure to read a CPU time
	sendErrN             int   // devices that stopped on a send error
	firstSendErr         string
}

// add records a round in which total messages were acknowledged in took,
// between the CPU marks before and after, with sendErrs devices stopped on
// a send error (firstErr, the first).
func (r *roundTotals) add(total int, took time.Duration, before, after cpuMark, sendErrs int, firstErr string) {
	r.roundRates = append(r.roundRates, float64(total)/took.Seconds())
	r.messages += total
	r.took += took
	r.serverCPU += after.server - before.server
	r.clientCPU += after.clients - before.clients
	if err := errors.Join(before.err, after.err); err != nil && r.cpuErr == nil {
		r.cpuErr = err
	}
	r.sendErrN += sendErrs
	if r.firstSendErr == "" {
		r.firstSendErr = firstErr
	}
}

// runHubLoad creates n devices, connects them all at once, lets each send
// telemetry back to back for period, and checks and reports what happened.
func runHubLoad(t *testing.T, ctx context.Context, target *hubTarget, n int, period time.Duration) (*table, loadResult, loadFigures) {
	l := startHubLoad(t, ctx, target, n)
	l.round(ctx, period)
	return l.finish(ctx)
}

// finish closes the clients, stops the hub, checks the tap against what
// was acknowledged and reports.
func (l *hubLoad) finish(ctx context.Context) (*table, loadResult, loadFigures) {
	t, target, n, pid, rss, tap := l.t, l.target, l.n, l.pid, l.rss, l.tap
	latency, attempts, failedN, firstConnErr, connectTook, online := l.latency, l.attempts, l.failedN, l.firstConnErr, l.connectTook, l.online
	memConnected, memErr, clients := l.memConnected, l.memErr, l.clients
	acked, sendTook, sendErrN, firstSendErr, load0, load1 := l.acked, l.took, l.sendErrN, l.firstSendErr, l.load0, l.load1
	clientsPeak, err := clients.close(ctx)
	if err != nil {
		t.Errorf("closing the clients: %v", err)
	}
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
	tb.addf("devices", "", "%d sdk/iothub clients, MQTT 3.1.1 over TLS, SAS keys, %s", n, clients.desc())
	tb.addf("hubsim", "", "%s", target.desc)
	if v := os.Getenv(envHubsimGOGC); v != "" && target.pid != 0 {
		tb.addf("hubsim GOGC", "tuning", "%s (%s; the runtime's default is 100)", v, envHubsimGOGC)
	}
	tb.addf("connected", "target all", "%d / %d (hubsim reports %d online; %d needed a second attempt)%s", n-failedN, n, online, retried, errNote(firstConnErr))
	tb.addf("connect latency", "Dial → connected", "p50 %s, p99 %s, max %s, mean %s", ms(conn.P50), ms(conn.P99), ms(conn.Max), ms(conn.Mean))
	throttle := "no connect throttle"
	switch {
	case target.connectRate < 0:
		throttle = "the build's own connect limits"
	case target.connectRate > 0:
		throttle = fmt.Sprintf("the hub's throttle of %g connects/s, refused connects retried with the agent's policy", target.connectRate)
	}
	tb.addf("connect storm", "", "all %d dialled at once against %s; last connected after %s (%.0f connects/s); %d attempts refused and retried",
		n, throttle, connectTook.Round(time.Millisecond), float64(n)/connectTook.Seconds(), retriedAttempts(attempts))
	hubPeak := "unknown"
	if l.hubPeak >= 0 {
		hubPeak = strconv.Itoa(l.hubPeak)
	}
	peakTarget := ""
	if target.connectRate > 0 {
		// hubsim's bucket holds one second's worth, so one second can admit
		// that plus one second's refill.
		peakTarget = fmt.Sprintf("target ≤ %g", 2*target.connectRate)
	}
	tb.addf("connect storm peak", peakTarget, "%s newly online in any one second in hubsim's own count (sampled every 100 ms), %d as the clients saw it (their times include TLS and scheduling)", hubPeak, peakPerSecond(latency))
	tb.addf("telemetry", "QoS 1 acknowledged", "%d messages in %s = %.0f msg/s (%.1f msg/s per device), one in flight per device; %d round(s)%s", totalAcked, sendTook.Round(time.Millisecond), float64(totalAcked)/sendTook.Seconds(), float64(totalAcked)/sendTook.Seconds()/float64(n), len(l.roundRates), roundNote(l.roundRates))
	tb.addf("send errors", "target 0", "%d%s", sendErrN, errNote(firstSendErr))
	tb.addf("event tap", "target = acked", "%d events tapped for %d acknowledged: %d acknowledged but missing, %d tapped twice (at-least-once resends), %d tapped but never acknowledged", res.tapped, totalAcked, res.missing, res.dups, res.extra)
	dropNote := fmt.Sprintf("%d (hub's count)", res.dropped)
	if res.dropErr != nil {
		dropNote = "unknown (" + res.dropErr.Error() + ")"
	}
	if target.pid != 0 {
		dropNote += fmt.Sprintf("; %d in the stream (%d {\"dropped\":N} lines; tap buffer %s)", res.streamDropped, dropLines, tap.buffer)
	}
	tb.addf("event tap drops", "target 0", "%s", dropNote)
	if target.tapQueued != nil {
		tb.addf("event tap backlog", "during telemetry", "at most %d events waiting in hubsim for the tap's reader (sampled every 250 ms; they count in hubsim's RSS)", l.tapQueuedMax)
	}
	who := "hubsim"
	if target.pid == 0 {
		who = "test process"
	}
	fig := loadFigures{devices: n, online: online, took: sendTook, acked: totalAcked, load0: load0, load1: load1,
		connects: float64(n-failedN) / connectTook.Seconds(), hubCPU: -1, clientCPU: -1, rssPerDevice: -1}
	fig.roundRates = l.roundRates
	if l.cpuErr == nil {
		used := l.serverCPU
		fig.hubCPU = used.Seconds()
		tb.addf(who+" CPU", "during telemetry", "%.2f cores busy (%.1f s user+system in %s, of %d CPUs) = %.0f messages per CPU-second", used.Seconds()/sendTook.Seconds(), used.Seconds(), sendTook.Round(time.Second), runtime.NumCPU(), float64(totalAcked)/used.Seconds())
	}
	if target.pid != 0 && l.cpuErr == nil {
		used := l.clientCPU
		fig.clientCPU = used.Seconds()
		tb.addf("clients CPU", "during telemetry", "%.2f cores busy (%s)", used.Seconds()/sendTook.Seconds(), clients.desc())
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
		fig.rssPerDevice = float64(loaded-idle) / 1024 / float64(per)
		tb.addf("hubsim RSS per device", "target ≤ 40 KiB", "%.1f KiB ((telemetry max − idle) / %d connected)", fig.rssPerDevice, per)
	}
	if target.memStats != nil {
		per := func(v int64) string { return fmt.Sprintf("%.1f KiB/device", float64(v)/1024/float64(max(online, 1))) }
		for _, mm := range []struct {
			when string
			m    memBreakdown
			err  error
		}{{"connected", memConnected, memErr}, {"telemetry", l.memTelemetry, l.memTelemetryErr}} {
			name := "hubsim memory, " + mm.when
			if mm.err != nil || mm.m.Sys == 0 {
				tb.addf(name, "runtime.MemStats", "unknown (%v)", mm.err)
				continue
			}
			m := mm.m
			tb.addf(name, "runtime.MemStats", "heap in use %s (%s, %d objects), heap free but kept %s, goroutine stacks %s (%s, %d goroutines), runtime structures %s; Sys %s",
				mib(m.HeapInuse), per(m.HeapInuse), m.HeapObjects, mib(m.retainedIdle()), mib(m.StackInuse), per(m.StackInuse), m.Goroutines, mib(m.Runtime), mib(m.Sys))
		}
	}
	if target.pid != 0 {
		tb.addf("clients peak RSS", "VmHWM", "%s (summed over the client processes)", mib(clientsPeak))
	}
	tb.addf("machine", "", "%s/%s, %d CPUs, %s; hubsim and the clients share it", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	t.Log("\n" + tb.String())

	// The targets.
	if target.connectRate > 0 && float64(l.hubPeak) > 2*target.connectRate {
		t.Errorf("the hub counted %d devices newly online within one second; its throttle of %g/s allows at most %g", l.hubPeak, target.connectRate, 2*target.connectRate)
	}
	if failedN != 0 {
		t.Errorf("%d devices did not connect; first: %s", failedN, firstConnErr)
	}
	if online != n {
		t.Errorf("hubsim reports %d devices online, want %d", online, n)
	}
	if sendErrN != 0 {
		t.Errorf("%d devices stopped on a send error, first: %v", sendErrN, firstSendErr)
	}
	if totalAcked == 0 {
		t.Error("no message was acknowledged")
	}
	if exitErr != nil {
		t.Errorf("hubsim did not exit cleanly: %v", exitErr)
	}
	return tb, res, fig
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

func errNote(s string) string {
	if s != "" {
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
	Pprof      string `json:"pprof"`       // runtime profiles, when started with -pprof
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
	return startHubsimBin(t, ctx, os.Getenv(envHubsimBin), extra...)
}

// startHubsimBin is startHubsimArgs with the binary given ("": build one).
func startHubsimBin(t *testing.T, ctx context.Context, bin string, extra ...string) *hubsimProc {
	t.Helper()
	dir := t.TempDir()
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
	if v := os.Getenv(envHubsimGOGC); v != "" {
		// Only hubsim's: the clients keep the runtime's default.
		p.cmd.Env = append(os.Environ(), "GOGC="+v)
	}
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
	EventTaps     []struct {
		Queued int `json:"queued"` // events waiting for the tap's reader
	} `json:"eventTaps"`
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
