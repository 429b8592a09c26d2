package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

const (
	pageResources    = 30
	pageResourceSize = 64 << 10
	// pageTimeout bounds one page load through the proxy: generous, for a
	// machine under heavy load; a load that succeeds returns at once.
	pageTimeout = 3 * time.Minute
)

// pageHTML is the device's web page: it fetches every resource at once
// (HTTP/1.1: the browser spreads them over up to 6 connections to the
// host), hashes each with SHA-256 and leaves the outcome in
// window.portholeResult for the test to read.
var pageHTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>device page</title></head>
<body><p id="status">loading</p>
<script>
(async () => {
  const t0 = performance.now();
  const hex = b => Array.from(new Uint8Array(b), x => x.toString(16).padStart(2, '0')).join('');
  const one = async i => {
    const r = await fetch('/r/' + i, {cache: 'no-store'});
    if (!r.ok) throw new Error('HTTP ' + r.status);
    const buf = await r.arrayBuffer();
    return {i, size: buf.byteLength, sha256: hex(await crypto.subtle.digest('SHA-256', buf))};
  };
  const all = await Promise.allSettled(Array.from({length: ` + strconv.Itoa(pageResources) + `}, (_, i) => one(i)));
  const end = performance.now();
  window.portholeResult = {pageMs: end, resourcesMs: end - t0,
    results: all.map((s, i) => s.status === 'fulfilled' ? s.value : {i, error: String(s.reason)})};
  document.getElementById('status').textContent = 'done';
})();
</script></body></html>
`

// deviceSite is the device-side web server: an ordinary keep-alive
// HTTP/1.1 server with the page and its resources, counting the TCP
// connections the resources came over.
type deviceSite struct {
	addr string
	sums []string // hex SHA-256 of each resource

	mu      sync.Mutex
	peers   map[string]int // guarded by mu: resource requests per client connection
	open    int            // guarded by mu: client connections open now
	maxOpen int            // guarded by mu: most open at once since takeConns
}

func startDeviceSite(t *testing.T) *deviceSite {
	t.Helper()
	s := &deviceSite{peers: map[string]int{}}
	resources := make([][]byte, pageResources)
	for i := range resources {
		var seed [32]byte
		seed[0] = byte(i)
		b := make([]byte, pageResourceSize)
		rand.NewChaCha8(seed).Read(b)
		sum := sha256.Sum256(b)
		resources[i], s.sums = b, append(s.sums, hex.EncodeToString(sum[:]))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		rw.Header().Set("Cache-Control", "no-store")
		rw.Write([]byte(pageHTML))
	})
	mux.HandleFunc("GET /r/{i}", func(rw http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(r.PathValue("i"))
		if err != nil || i < 0 || i >= pageResources {
			http.NotFound(rw, r)
			return
		}
		s.mu.Lock()
		s.peers[r.RemoteAddr]++
		s.mu.Unlock()
		rw.Header().Set("Content-Type", "application/octet-stream")
		rw.Header().Set("Cache-Control", "no-store")
		rw.Header().Set("Content-Length", strconv.Itoa(len(resources[i])))
		rw.Write(resources[i])
	})
	mux.HandleFunc("GET /favicon.ico", func(rw http.ResponseWriter, r *http.Request) { rw.WriteHeader(http.StatusNoContent) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Minute, ConnState: func(_ net.Conn, st http.ConnState) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch st {
		case http.StateNew:
			s.open++
			s.maxOpen = max(s.maxOpen, s.open)
		case http.StateClosed, http.StateHijacked:
			s.open--
		}
	}}
	done := make(chan struct{})
	go func() { // owned by the cleanup below
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return s
}

// takeConns returns how many connections carried resource requests since
// the last call and the most that were open at once, and starts counting
// afresh.
func (s *deviceSite) takeConns() (used, maxOpen int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	used, maxOpen = len(s.peers), s.maxOpen
	s.peers, s.maxOpen = map[string]int{}, s.open
	return used, maxOpen
}

// openConns is the number of client connections open now.
func (s *deviceSite) openConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// browser is a headless Chromium.
type browser struct {
	ctx context.Context
}

func newBrowser(t *testing.T, path string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first action starts Chromium and its tab, tied to the context
	// it runs with: the tab's own, so that later actions' timeouts do not
	// end the browser.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return &browser{ctx: ctx}
}

// pageResult is what the page leaves in window.portholeResult.
type pageResult struct {
	PageMs      float64 `json:"pageMs"`      // navigation start to the last resource
	ResourcesMs float64 `json:"resourcesMs"` // the 30 fetches alone
	Results     []struct {
		I      int    `json:"i"`
		Size   int    `json:"size"`
		SHA256 string `json:"sha256"`
		Error  string `json:"error"`
	} `json:"results"`
}

// load opens url and waits until the page has fetched every resource (or
// given up on some).
func (b *browser) load(t *testing.T, url string, procs ...*proc) pageResult {
	t.Helper()
	tails := func() string {
		var s []string
		for _, p := range procs {
			s = append(s, p.tail(15))
		}
		return strings.Join(s, "\n")
	}
	ctx, cancel := context.WithTimeout(b.ctx, pageTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("browser: open %s: %v\n%s", url, err, tails())
	}
	var raw string
	testwait.For(t, pageTimeout, "the page to fetch its resources", func() (bool, string) {
		ectx, ecancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer ecancel()
		s, err := chromedp.Run(ectx, chromedp.Evaluate[string](`window.portholeResult ? JSON.stringify(window.portholeResult) : ""`))
		if err != nil {
			return false, "evaluate: " + err.Error() + "\n" + tails()
		}
		raw = s
		return s != "", tails()
	})
	var r pageResult
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		t.Fatalf("page result %q: %v", raw, err)
	}
	return r
}

// check counts the resources that arrived whole and correct; it reports
// each one that did not.
func (r pageResult) check(sums []string) (ok int, problems []string) {
	seen := map[int]bool{}
	for _, x := range r.Results {
		switch {
		case x.Error != "":
			problems = append(problems, fmt.Sprintf("resource %d: %s", x.I, x.Error))
		case x.I < 0 || x.I >= len(sums) || seen[x.I]:
			problems = append(problems, fmt.Sprintf("unexpected resource %d", x.I))
		case x.Size != pageResourceSize || x.SHA256 != sums[x.I]:
			problems = append(problems, fmt.Sprintf("resource %d: %d bytes, sha256 %s, want %d bytes, %s", x.I, x.Size, x.SHA256, pageResourceSize, sums[x.I]))
		default:
			seen[x.I] = true
			ok++
		}
	}
	return ok, problems
}

// TestBrowserPage: headless Chromium loads a device's web page of 30
// resources of 64 KiB, fetched in parallel from a keep-alive HTTP/1.1
// server, through the real porthole proxy, hubsim on Azure's default
// stream limits (5 new streams per second, 50 at once) and the real
// porthole-agent: (a) over one multiplexed stream, (b) with mux disabled in
// the agent's config, where the proxy falls back to one stream per browser
// connection and paces its requests within the hub's limits, and (c) as
// (b) with the proxy's pacing lifted, so that the hub's 429s are what
// holds the requests back. Every
// resource must arrive byte-exact in both; the load times are printed, not
// asserted.
func TestBrowserPage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	requireLinux(t)
	chromium := hubsimtest.RequireTool(t, "chromium", "chromium")
	site := startDeviceSite(t)
	targets := map[string]string{"web": site.addr}
	w := newWorldWith(t, worldOptions{targets: targets, simDefaults: true})
	w.dumpOnFailure()
	defer w.stop()
	br := newBrowser(t, chromium)

	type outcome struct {
		name       string
		page, res  time.Duration
		conns      int // connections that carried resources
		parallel   int // most connections open at once
		ok         int
		delayed429 int
	}
	var outcomes []outcome
	run := func(name, wantLog string, extraArgs ...string) {
		t.Helper()
		port := freePort(t)
		args := append([]string{"proxy", deviceID, "--stream", "web", "-L", "127.0.0.1:" + strconv.Itoa(port), "--config", w.opConfig}, extraArgs...)
		p := startProc(t, w.dir, "porthole-proxy-"+name, nil, binaries(t).porthole, args...)
		defer p.stop(t, true)
		testwait.For(t, startTimeout, "porthole proxy ("+name+") to listen", func() (bool, string) {
			if p.exited() {
				t.Fatalf("porthole proxy exited: %v\n%s", p.err, p.tail(20))
			}
			return p.logContains("msg=listening"), p.tail(10)
		})
		if !p.logContains(wantLog) {
			t.Fatalf("porthole proxy (%s) did not say %q\n%s", name, wantLog, p.tail(20))
		}
		// The previous case's connections are gone (its proxy stopped),
		// so the count of connections open at once is this page's.
		testwait.For(t, startTimeout, "the device's web server to have no connection open", func() (bool, string) {
			n := site.openConns()
			return n == 0, strconv.Itoa(n) + " open"
		})
		site.takeConns()
		r := br.load(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/", p, w.agent)
		ok, problems := r.check(site.sums)
		conns, parallel := site.takeConns()
		o := outcome{name: name, page: time.Duration(r.PageMs * float64(time.Millisecond)),
			res: time.Duration(r.ResourcesMs * float64(time.Millisecond)), conns: conns, parallel: parallel, ok: ok,
			delayed429: strings.Count(p.readLog(), "stream request delayed")}
		outcomes = append(outcomes, o)
		t.Logf("%s: %d of %d resources correct; page loaded in %v (the 30 fetches %v) over %d browser connections, %d open at once",
			name, ok, pageResources, o.page.Round(time.Millisecond), o.res.Round(time.Millisecond), conns, parallel)
		if ok != pageResources {
			t.Errorf("%s: %d of %d resources arrived correct:\n%s\n%s\n%s", name, ok, pageResources,
				strings.Join(problems, "\n"), p.tail(30), w.agent.tail(30))
		}
		// HTTP/1.1: the browser spreads the fetches over several
		// connections open at once (up to 6 per host), each a connection
		// inside the mux stream or a stream of its own.
		if conns < 2 || parallel < 2 {
			t.Errorf("%s: the resources came over %d connection(s), at most %d open at once; the browser did not load them in parallel",
				name, conns, parallel)
		}
	}

	run("mux", "multiplexed stream open")
	w.reload(t, targets, "  mux:\n    enabled: false\n")
	run("no-mux-paced", "one stream per connection")
	// The proxy's own pacing (4 per second) keeps it under the hub's limit;
	// without it the hub answers some of the browser's 6 stream requests
	// with 429, and the proxy must wait out Retry-After instead of dropping
	// the connection (how the page lost 8 to 13 of its 30 resources before).
	run("no-mux-unpaced", "one stream per connection", "--stream-rate", "100")

	var b strings.Builder
	fmt.Fprintf(&b, "Headless Chromium, page of %d × %d KiB through porthole proxy → hubsim (default stream limits) → porthole-agent\n\n",
		pageResources, pageResourceSize>>10)
	fmt.Fprintf(&b, "%-24s %10s %12s %12s %8s %10s %18s\n", "case", "correct", "page load", "30 fetches", "conns", "at once", "retried requests")
	for _, o := range outcomes {
		fmt.Fprintf(&b, "%-24s %7d/%d %10.0fms %10.0fms %8d %10d %18d\n", o.name, o.ok, pageResources, ms(o.page), ms(o.res), o.conns, o.parallel, o.delayed429)
	}
	fmt.Fprintf(&b, "\nmux: one multiplexed stream; no-mux: the agent's streams.mux.enabled false, one stream per browser connection,\n"+
		"paced by the proxy (4 per second) or unpaced (--stream-rate 100: the hub's 429s hold them back)\n")
	t.Log("\n" + b.String())
	if os.Getenv("PORTHOLE_BENCH") == "1" {
		writeBenchTable(t, "bench-browser.txt", b.String())
	}
}

// writeBenchTable writes a table under the module's out/ directory, as
// the benchmarks do.
func writeBenchTable(t *testing.T, name, table string) {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, name), []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
}
