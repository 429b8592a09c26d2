package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/testwait"
)

// TestBenchMux compares a multiplexed stream with one stream per
// connection through the real agent, hubsim (default stream limits) and
// porthole proxy, and prints one table:
//
//	(a) page load: 30 GETs of 64 KiB over 6 parallel keep-alive
//	    connections (a browser's pattern), mux vs one stream per connection;
//	(b) bulk: one connection's throughput and CPU per GB, inside a mux
//	    stream vs a plain stream;
//	(c) the agent's RSS with one mux stream holding 100 idle connections,
//	    against the idle agent.
func TestBenchMux(t *testing.T) {
	size := benchSize(t, 256<<20)
	b := binaries(t)
	resource := make([]byte, 64<<10)
	copy(resource, payload)
	web := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Length", strconv.Itoa(len(resource)))
		rw.Write(resource)
	})}
	wln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go web.Serve(wln)
	defer web.Close()
	benchAddr := serveTCP(t, serveBench)
	echo := echoTCP(t)
	// hubsim on its built-in configuration: Azure's stream limits, which
	// the table's title promises (newWorld lifts them).
	w := newWorldWith(t, worldOptions{targets: map[string]string{"web": wln.Addr().String(), "bench": benchAddr, "echo": echo}, simDefaults: true})
	w.dumpOnFailure()
	defer w.stop()

	// Pacing for the measurement, not synchronisation: the idle RSS is read
	// after the connected agent has sat idle a while.
	time.Sleep(2 * time.Second)
	rssIdle, err := vmRSS(w.agent.pid())
	if err != nil {
		t.Fatal(err)
	}

	startProxy := func(name, mode string, fwds ...string) (*proc, []string) {
		args := []string{"proxy", deviceID, "--mux", mode, "--config", w.opConfig}
		var addrs []string
		for _, f := range fwds {
			a := "127.0.0.1:" + strconv.Itoa(freePort(t))
			addrs = append(addrs, a)
			args = append(args, "-L", a+":"+f)
		}
		p := startProc(t, w.dir, name, nil, b.porthole, args...)
		testwait.For(t, startTimeout, fmt.Sprintf("%s listening on its %d forwards", name, len(fwds)), func() (bool, string) {
			n := strings.Count(readLog(p), "msg=listening")
			if n >= len(fwds) {
				return true, ""
			}
			if p.exited() {
				t.Fatalf("%s did not start: exited (%v)\n%s", name, p.err, p.tail(20))
			}
			return false, fmt.Sprintf("%d listening\n%s", n, p.tail(20))
		})
		return p, addrs
	}
	muxP, muxAddrs := startProxy("proxy-mux", "on", "web", "bench", "echo")
	plainP, plainAddrs := startProxy("proxy-plain", "off", "web", "bench")

	// (a) page loads, three each, alternating.
	var muxLoads, plainLoads []time.Duration
	for range 3 {
		muxLoads = append(muxLoads, pageLoad(t, muxAddrs[0]))
		plainLoads = append(plainLoads, pageLoad(t, plainAddrs[0]))
	}
	slices.Sort(muxLoads)
	slices.Sort(plainLoads)

	// (b) bulk through one connection each.
	muxBulk := measureChain(t, "mux", muxAddrs[1], []*proc{muxP, w.sim.proc, w.agent}, size)
	plainBulk := measureChain(t, "plain", plainAddrs[1], []*proc{plainP, w.sim.proc, w.agent}, size)

	// (c) 100 idle connections in the mux stream.
	var idle []net.Conn
	for range 100 {
		c, err := net.Dial("tcp", muxAddrs[2])
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
		if _, err := c.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second) // pacing, not synchronisation: the RSS is read after the 100 connections sat idle a while
	rssMux, err := vmRSS(w.agent.pid())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range idle {
		c.Close()
	}

	table := formatMuxTable(muxLoads, plainLoads, muxBulk, plainBulk, rssIdle, rssMux)
	t.Log("\n" + table)
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "bench-mux.txt"), []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	muxP.stop(t, true)
	plainP.stop(t, true)
}

func readLog(p *proc) string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// pageLoad fetches 30 resources of 64 KiB over at most 6 keep-alive
// connections, as a browser loads a page, and returns the time it took.
func pageLoad(t *testing.T, addr string) time.Duration {
	t.Helper()
	tr := &http.Transport{MaxConnsPerHost: 6, MaxIdleConnsPerHost: 6, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(fmt.Sprintf("http://%s/r/%d", addr, i))
			if err != nil {
				errs <- err
				return
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && n != 64<<10 {
				err = fmt.Errorf("resource %d: %d bytes", i, n)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("page load through %s: %v", addr, err)
		}
	}
	return time.Since(start)
}

func formatMuxTable(muxLoads, plainLoads []time.Duration, mux, plain chainResult, rssIdle, rssMux int64) string {
	var b strings.Builder
	med := func(d []time.Duration) time.Duration { return d[len(d)/2] }
	fmt.Fprintf(&b, "Multiplexed stream vs one stream per connection (porthole proxy → hubsim → porthole-agent, hubsim default limits)\n\n")
	fmt.Fprintf(&b, "%-52s %14s %14s %10s %s\n", "measure", "mux", "per-conn", "ratio", "target")
	fmt.Fprintf(&b, "%-52s %12.0fms %12.0fms %9.1fx %s\n", "(a) page load, 30×64 KiB over 6 conns (median of 3)",
		ms(med(muxLoads)), ms(med(plainLoads)), float64(med(plainLoads))/float64(med(muxLoads)), "mux ≥ 5× faster")
	upRatio, downRatio := mux.upMiBps/plain.upMiBps, mux.downMiBps/plain.downMiBps
	fmt.Fprintf(&b, "%-52s %9.1f MiB/s %9.1f MiB/s %9.2fx %s\n", fmt.Sprintf("(b) bulk upload, one connection, %d MiB", mux.size>>20),
		mux.upMiBps, plain.upMiBps, upRatio, "≥ 0.9×")
	fmt.Fprintf(&b, "%-52s %9.1f MiB/s %9.1f MiB/s %9.2fx %s\n", "(b) bulk download, one connection",
		mux.downMiBps, plain.downMiBps, downRatio, "≥ 0.9×")
	for i, name := range mux.procs {
		fmt.Fprintf(&b, "%-52s %10.2f s/GB %10.2f s/GB %9.2fx %s\n", "(b) CPU per GB, "+name,
			mux.cpuPerGB(i), plain.cpuPerGB(i), mux.cpuPerGB(i)/plain.cpuPerGB(i), "≤ 1.15×")
	}
	fmt.Fprintf(&b, "%-52s %10.2f s/GB %10.2f s/GB %9.2fx %s\n", "(b) CPU per GB, all three",
		mux.cpuPerGB(-1), plain.cpuPerGB(-1), mux.cpuPerGB(-1)/plain.cpuPerGB(-1), "≤ 1.15×")
	fmt.Fprintf(&b, "%-52s %10.1f MiB %10.1f MiB %+9.1f MiB %s\n", "(c) agent RSS: 100 idle conns in one mux vs idle",
		mib(rssMux), mib(rssIdle), mib(rssMux-rssIdle), "≤ +4 MiB")
	fmt.Fprintf(&b, "\npage loads mux %v, per-conn %v\n", muxLoads, plainLoads)
	return b.String()
}
