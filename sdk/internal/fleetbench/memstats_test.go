package fleetbench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// envLoadProfile names a directory: the hub load saves hubsim's heap and
// goroutine profiles there once all devices are connected
// (heap-<devices>.pb.gz for `go tool pprof`, goroutine-<devices>.txt).
const envLoadProfile = "PORTHOLE_BENCH_HUB_PROFILE"

// memBreakdown is where a Go process's memory goes, from the
// runtime.MemStats that /debug/pprof/heap?debug=1 prints at its end. All
// values in bytes.
type memBreakdown struct {
	HeapInuse    int64 // spans with objects (live or not yet swept garbage)
	HeapIdle     int64 // spans without objects …
	HeapReleased int64 // … of which returned to the OS (not in RSS)
	HeapObjects  int64
	StackInuse   int64 // goroutine stacks
	Runtime      int64 // MSpan + MCache + GC metadata + buckets + other runtime structures (Sys)
	Sys          int64 // everything the runtime obtained from the OS
	Goroutines   int
}

// retainedIdle is free heap the runtime keeps without returning it: it
// counts in RSS but holds nothing.
func (m memBreakdown) retainedIdle() int64 { return m.HeapIdle - m.HeapReleased }

// parseMemStats reads the "# Name = value" lines (and "# Name = inuse /
// sys") of a debug=1 heap profile.
func parseMemStats(r io.Reader) (memBreakdown, error) {
	vals := map[string][2]int64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "# ")
		if !ok {
			continue
		}
		name, v, ok := strings.Cut(line, " = ")
		if !ok {
			continue
		}
		inuse, sys, both := strings.Cut(v, " / ")
		a, err := strconv.ParseInt(inuse, 10, 64)
		if err != nil {
			continue // a list such as PauseNs
		}
		b := a
		if both {
			if b, err = strconv.ParseInt(sys, 10, 64); err != nil {
				continue
			}
		}
		vals[name] = [2]int64{a, b}
	}
	if err := sc.Err(); err != nil {
		return memBreakdown{}, err
	}
	for _, k := range []string{"HeapInuse", "HeapIdle", "HeapReleased", "Stack", "MSpan", "MCache", "GCSys", "OtherSys", "BuckHashSys", "Sys"} {
		if _, ok := vals[k]; !ok {
			return memBreakdown{}, fmt.Errorf("heap profile: no %s in its runtime.MemStats", k)
		}
	}
	return memBreakdown{
		HeapInuse:    vals["HeapInuse"][0],
		HeapIdle:     vals["HeapIdle"][0],
		HeapReleased: vals["HeapReleased"][0],
		HeapObjects:  vals["HeapObjects"][0],
		StackInuse:   vals["Stack"][0],
		Runtime:      vals["MSpan"][1] + vals["MCache"][1] + vals["GCSys"][0] + vals["OtherSys"][0] + vals["BuckHashSys"][0],
		Sys:          vals["Sys"][0],
	}, nil
}

// pprofGet fetches a path of hubsim's -pprof server.
func (p *hubsimProc) pprofGet(ctx context.Context, path string) (*http.Response, error) {
	if p.status.Pprof == "" {
		return nil, fmt.Errorf("hubsim was started without -pprof")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.status.Pprof+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return resp, nil
}

// memStats reads hubsim's memory breakdown and goroutine count.
func (p *hubsimProc) memStats(ctx context.Context) (memBreakdown, error) {
	resp, err := p.pprofGet(ctx, "/debug/pprof/heap?debug=1")
	if err != nil {
		return memBreakdown{}, err
	}
	m, err := parseMemStats(resp.Body)
	resp.Body.Close()
	if err != nil {
		return m, err
	}
	resp, err = p.pprofGet(ctx, "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	first, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		return m, err
	}
	if _, err := fmt.Sscanf(first, "goroutine profile: total %d", &m.Goroutines); err != nil {
		return m, fmt.Errorf("goroutine profile: %q: %w", first, err)
	}
	return m, nil
}

// saveProfiles writes hubsim's heap profile (after a GC, so it shows what
// is live) and its goroutines to dir.
func (p *hubsimProc) saveProfiles(ctx context.Context, dir, name string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []struct{ path, name string }{
		{"/debug/pprof/heap?gc=1", "heap-" + name + ".pb.gz"},
		{"/debug/pprof/goroutine?debug=1", "goroutine-" + name + ".txt"},
	} {
		resp, err := p.pprofGet(ctx, f.path)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// saveCPUProfile writes hubsim's CPU profile over the next seconds to
// dir/cpu-<devices>.pb.gz.
func (p *hubsimProc) saveCPUProfile(ctx context.Context, dir string, devices, seconds int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	resp, err := p.pprofGet(ctx, "/debug/pprof/profile?seconds="+strconv.Itoa(seconds))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, fmt.Sprintf("cpu-%d.pb.gz", devices)), b, 0o644)
}
