package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/server"
	"github.com/porthole-iot/porthole/hubsim/internal/store"
	"github.com/porthole-iot/porthole/sdk/service"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// buildHubsim builds this package's binary as shipped (no race detector,
// cgo off) into dir.
func buildHubsim(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "hubsim")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// hubsimProc is a hubsim process started by a test.
type hubsimProc struct {
	cmd    *exec.Cmd
	log    string
	done   chan struct{} // closed when Wait returned; owned by the wait goroutine
	err    error         // Wait's result, read after done
	status server.Status
}

// startHubsim runs bin with its state in stateDir on free loopback ports and
// waits for its status file. A cleanup kills it if the test did not stop it.
func startHubsim(t *testing.T, bin, dir, stateDir, name string) *hubsimProc {
	t.Helper()
	statusPath := filepath.Join(dir, name+"-status.json")
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child has its own copy
	cmd := exec.Command(bin, "-listen", "127.0.0.1", "-https-port", "0", "-mqtt-port", "0",
		"-state-dir", stateDir, "-status-file", statusPath, "-log-level", "warn")
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &hubsimProc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { // owned by p: ends with the process, which the cleanup ensures
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	testwait.For(t, waitTimeout, name+"'s status file", func() (bool, string) {
		select {
		case <-p.done:
			t.Fatalf("%s exited: %v\n%s", name, p.err, p.tail())
		default:
		}
		b, err := os.ReadFile(statusPath)
		if err != nil {
			return false, err.Error()
		}
		return json.Unmarshal(b, &p.status) == nil, string(b)
	})
	return p
}

func (p *hubsimProc) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// serviceConfig reaches this hubsim's HTTPS port for any host name.
func (p *hubsimProc) serviceConfig(t *testing.T, cs string) service.Config {
	t.Helper()
	pem, err := os.ReadFile(p.status.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate")
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.status.Ports.HTTPS))
	var d net.Dialer
	return service.Config{ConnectionString: cs, RootCAs: pool,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}}
}

func (p *hubsimProc) clients(t *testing.T) (*service.Client, *service.DPSClient) {
	t.Helper()
	hc, err := service.New(p.serviceConfig(t, p.status.Hubs[0].ServiceConnectionString))
	if err != nil {
		t.Fatal(err)
	}
	dc, err := service.NewDPS(p.serviceConfig(t, p.status.DPS.ServiceConnectionString))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Close(); dc.Close() })
	return hc, dc
}

// Crash-test outcomes of one write.
const (
	notSent  = iota // the process was killed before the write was sent
	inFlight        // sent; no success answer (error, reset, refused): may or may not be stored
	acked           // answered with success: must be stored
)

// TestCrashSafety SIGKILLs the real hubsim binary during 1,000 concurrent
// writes (500 twin updates, 500 enrollment writes) and restarts it on the
// same state directory. Definitions:
//   - acknowledged: the REST call returned success before the kill; every
//     acknowledged write must be found after the restart, with its value;
//   - in flight: the call was started but returned no success (the process
//     died under it); it may or may not be found;
//   - not sent: the workers saw the kill before starting the call; none may
//     be found, and nothing may be found that no write put there.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the hubsim binary")
	}
	const (
		writes  = 1000
		devices = 20
		workers = 32
		killAt  = 300 // acknowledged writes before the kill
	)
	dir := t.TempDir()
	bin := buildHubsim(t, dir)
	stateDir := filepath.Join(dir, "state")
	a := startHubsim(t, bin, dir, stateDir, "first")
	hc, dc := a.clients(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for d := range devices {
		if _, err := hc.CreateDevice(ctx, fmt.Sprintf("d%02d", d)); err != nil {
			t.Fatal(err)
		}
	}

	// Even i: tag "w<i>" = i on device d<i/2 mod 20>. Odd i: enrollment "crash-<i>".
	device := func(i int) string { return fmt.Sprintf("d%02d", (i/2)%devices) }
	var (
		outcome  [writes]atomic.Int32
		nAcked   atomic.Int64
		killed   atomic.Bool
		wg       sync.WaitGroup
		failures sync.Map // i → the error, for the log
	)
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() { // owned by the test: ends when next is closed
			defer wg.Done()
			for i := range next {
				if killed.Load() {
					continue // notSent
				}
				outcome[i].Store(inFlight)
				cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
				var err error
				if i%2 == 0 {
					_, err = hc.UpdateTwin(cctx, device(i), service.TwinPatch{Tags: map[string]any{"w" + strconv.Itoa(i): i}}, "*")
				} else {
					_, err = dc.PutEnrollment(cctx, service.IndividualEnrollment{RegistrationID: "crash-" + strconv.Itoa(i),
						Attestation: &service.AttestationMechanism{Type: service.AttestationSymmetricKey, SymmetricKey: &service.SymmetricKeyAttestation{}}})
				}
				ccancel()
				if err == nil {
					outcome[i].Store(acked)
					nAcked.Add(1)
				} else {
					failures.Store(i, err)
				}
			}
		}()
	}
	feedDone := make(chan struct{})
	go func() { // owned by the test: ends after the last index
		defer close(feedDone)
		defer close(next)
		for i := range writes {
			next <- i
		}
	}()
	testwait.True(t, 2*time.Minute, fmt.Sprintf("%d acknowledged writes", killAt), func() bool { return nAcked.Load() >= killAt })
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed.Store(true)
	<-a.done
	<-feedDone
	wg.Wait()

	var counts [3]int
	for i := range writes {
		counts[outcome[i].Load()]++
	}
	// A write acknowledged after the kill signal was sent was still
	// acknowledged by the process before it died: it counts as acknowledged.
	if counts[acked] < killAt || counts[notSent] == 0 {
		t.Fatalf("the kill did not land mid-way: %v (not sent, in flight, acked)", counts)
	}
	failures.Range(func(k, v any) bool {
		if outcome[k.(int)].Load() == acked {
			t.Errorf("write %d both failed and succeeded", k)
		}
		return true
	})

	b := startHubsim(t, bin, dir, stateDir, "second")
	hc, dc = b.clients(t)
	found := map[int]bool{}
	for d := range devices {
		tw, err := hc.GetTwin(ctx, fmt.Sprintf("d%02d", d))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range tw.Tags {
			i, err := strconv.Atoi(strings.TrimPrefix(k, "w"))
			if err != nil || !strings.HasPrefix(k, "w") || i < 0 || i >= writes || i%2 != 0 || device(i) != tw.DeviceID {
				t.Errorf("twin %s has tag %q that no write put there", tw.DeviceID, k)
				continue
			}
			if f, ok := v.(float64); !ok || int(f) != i {
				t.Errorf("twin %s tag %s = %v, want %d", tw.DeviceID, k, v, i)
			}
			found[i] = true
		}
	}
	var mu sync.Mutex
	var lookups sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := 1; i < writes; i += 2 {
		lookups.Add(1)
		sem <- struct{}{}
		go func() { // owned by the test: waited for below
			defer lookups.Done()
			defer func() { <-sem }()
			_, err := dc.GetEnrollment(ctx, "crash-"+strconv.Itoa(i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				found[i] = true
			case !errors.Is(err, service.ErrNotFound):
				t.Errorf("enrollment crash-%d: %v", i, err)
			}
		}()
	}
	lookups.Wait()

	var foundOf [3]int
	for i := range writes {
		o := outcome[i].Load()
		if found[i] {
			foundOf[o]++
		}
		switch {
		case o == acked && !found[i]:
			t.Errorf("acknowledged write %d is missing after the restart", i)
		case o == notSent && found[i]:
			t.Errorf("write %d was never sent but is there after the restart", i)
		}
	}
	t.Logf("crash test: %d writes; acknowledged before SIGKILL %d, found after restart %d; in flight %d, found %d; never sent %d, found %d",
		writes, counts[acked], foundOf[acked], counts[inFlight], foundOf[inFlight], counts[notSent], foundOf[notSent])

	// The restarted hubsim stops cleanly, and its database's twin_docs
	// agree with what its REST API showed.
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.done:
		if b.err != nil {
			t.Fatalf("hubsim after SIGTERM: %v\n%s", b.err, b.tail())
		}
	case <-time.After(waitTimeout):
		t.Fatal("hubsim did not stop after SIGTERM")
	}
	st, err := store.Open(ctx, filepath.Join(stateDir, store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var tags int
	if err := st.DB().QueryRowContext(ctx, `SELECT count(*) FROM twin_docs, json_each(twin_docs.doc, '$.tags')
		WHERE twin_docs.module_id = ''`).Scan(&tags); err != nil {
		t.Fatal(err)
	}
	var twinTags int
	for i := 0; i < writes; i += 2 {
		if found[i] {
			twinTags++
		}
	}
	if tags != twinTags {
		t.Errorf("twin_docs hold %d tags, the REST API showed %d", tags, twinTags)
	}
}
