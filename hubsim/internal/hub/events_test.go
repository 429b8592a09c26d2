package hub

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/porthole-iot/porthole/sdk/testwait"
)

// gatedWriter is an http.ResponseWriter whose first Write blocks until
// release is closed, announcing on entered that it is blocked; it stands
// for a reader that stopped reading.
type gatedWriter struct {
	hdr     http.Header
	entered chan struct{}
	release chan struct{}
	once    sync.Once

	mu     sync.Mutex
	buf    bytes.Buffer // guarded by mu
	status int          // guarded by mu
	wrote  chan struct{}
}

func newGatedWriter() *gatedWriter {
	return &gatedWriter{hdr: http.Header{}, entered: make(chan struct{}), release: make(chan struct{}), wrote: make(chan struct{}, 1)}
}

func (g *gatedWriter) Header() http.Header { return g.hdr }

func (g *gatedWriter) WriteHeader(code int) {
	g.mu.Lock()
	g.status = code
	g.mu.Unlock()
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.once.Do(func() {
		close(g.entered)
		<-g.release
	})
	g.mu.Lock()
	g.buf.Write(p)
	g.mu.Unlock()
	select {
	case g.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (g *gatedWriter) Flush() {}

// lines returns the complete lines written so far.
func (g *gatedWriter) lines() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(g.buf.Bytes()))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// waitLines waits until at least n lines were written.
func (g *gatedWriter) waitLines(t *testing.T, n int) []string {
	t.Helper()
	for {
		if l := g.lines(); len(l) >= n {
			return l
		}
		<-g.wrote
	}
}

// A reader that falls behind loses events, and the stream says how many:
// after the batch in which its count grew, and once more at the end.
func TestAdminTapReportsDrops(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	d := e.connectDevice(h, "dev1", e.device(h, "dev1"))
	gw := newGatedWriter()
	served := make(chan struct{})
	go func() {
		defer close(served)
		h.ServeEvents(gw, httptest.NewRequest("GET", "/hubsim/hubs/hub1.example.net/events?buffer=1", nil))
	}()
	waitTaps(t, h, 1)
	send := func(seq int) {
		t.Helper()
		if err := d.pub("devices/dev1/messages/events/", strconv.Itoa(seq)); err != nil {
			t.Fatal(err)
		}
	}
	send(0)
	<-gw.entered // the handler is stuck writing event 0
	for seq := 1; seq <= 5; seq++ {
		send(seq) // 1 waits in the one-slot buffer, 2…5 are dropped
	}
	if got := h.DroppedEvents(); got != 4 {
		t.Errorf("DroppedEvents = %d, want 4", got)
	}
	if tp := h.Taps(); len(tp) != 1 || tp[0].Dropped != 4 || tp[0].Buffer != 1 || tp[0].Queued != 1 {
		t.Errorf("Taps = %+v", tp)
	}
	if gw.hdr.Get(headerTapBuffer) != "1" || gw.hdr.Get(headerTapID) != strconv.Itoa(h.Taps()[0].ID) {
		t.Errorf("headers %v", gw.hdr)
	}

	// Stats (GET /hubsim/hubs) shows the loss too.
	if st := h.Stats(); st.DroppedEvents != 4 || len(st.EventTaps) != 1 || st.EventTaps[0].Dropped != 4 {
		t.Errorf("stats %+v", st)
	}

	close(gw.release)
	lines := gw.waitLines(t, 3)
	e.set.Close() // ends the stream with a final count
	<-served
	lines = gw.lines()
	want := []string{"0", "1", `{"dropped":4}`, `{"dropped":4}`}
	if len(lines) != len(want) {
		t.Fatalf("stream %q, want %d lines", lines, len(want))
	}
	for i, l := range lines {
		var ev Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		got := string(ev.Body)
		if ev.DeviceID == "" {
			got = l
		}
		if got != want[i] {
			t.Errorf("line %d = %q, want %q", i, got, want[i])
		}
	}
	if tp := h.Taps(); len(tp) != 0 {
		t.Errorf("taps after the stream ended: %+v", tp)
	}
}

func TestAdminTapBadBuffer(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	for _, q := range []string{"0", "-1", "x", strconv.Itoa(MaxTapBuffer + 1)} {
		rec := httptest.NewRecorder()
		h.ServeEvents(rec, httptest.NewRequest("GET", "/hubsim/hubs/hub1.example.net/events?buffer="+q, nil))
		if rec.Code != http.StatusBadRequest {
			t.Errorf("buffer=%s: status %d", q, rec.Code)
		}
	}
}

func waitTaps(t *testing.T, h *Hub, n int) {
	t.Helper()
	testwait.For(t, testwait.Default, fmt.Sprintf("%d event taps", n), func() (bool, string) {
		have := len(h.Taps())
		return have == n, fmt.Sprintf("%d taps", have)
	})
}

// Publishers, subscribers that come and go, and the hub closing, all at
// once: no send on a closed channel, no race, and a subscriber with room
// for everything misses nothing.
func TestTapConcurrent(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	const devices, msgs = 8, 200
	var conns []*dev
	for i := range devices {
		id := "dev" + strconv.Itoa(i)
		conns = append(conns, e.connectDevice(h, id, e.device(h, id)))
	}
	events, cancel := h.Subscribe(devices * msgs)
	defer cancel()
	ptr := h.subscribePtr(devices * msgs)

	stop := make(chan struct{})
	var churn sync.WaitGroup
	var churned atomic.Int32
	churn.Add(1)
	go func() { // subscribers that come and go, reading a little
		defer churn.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ch, c := h.Subscribe(2)
			select {
			case <-ch:
			default:
			}
			c()
			c() // cancel is idempotent
			churned.Add(1)
		}
	}()
	var pubs sync.WaitGroup
	for i, d := range conns {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for seq := range msgs {
				if err := d.pub("devices/dev"+strconv.Itoa(i)+"/messages/events/", strconv.Itoa(seq)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	pubs.Wait()
	close(stop)
	churn.Wait()
	if len(events) != devices*msgs || len(ptr.pch) != devices*msgs {
		t.Errorf("deep subscribers got %d and %d events, want %d", len(events), len(ptr.pch), devices*msgs)
	}
	if churned.Load() == 0 {
		t.Error("no subscriber came and went")
	}
	e.set.Close()
	n := 0
	for range events {
		n++
	}
	if n != devices*msgs {
		t.Errorf("drained %d events after close, want %d", n, devices*msgs)
	}
	ch, c := h.Subscribe(1)
	if _, ok := <-ch; ok {
		t.Error("Subscribe after close: channel open")
	}
	c()
}
