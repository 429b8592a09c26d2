package dps

import (
	"container/heap"
	"fmt"
	"math/rand"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestQuotaRetryAfterGivesASlot(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Quota = Quota{Limit: 6, Window: time.Minute, Burst: -1} })
	ids := []string{"d0", "d1", "d2", "d3"}
	for _, id := range ids {
		e.mustPut(symmetricEnrollment(id, key1))
	}
	// All four arrive at once: one slot every 10 s.
	wantRA := []string{"", "10", "20", "30"}
	for i, id := range ids {
		r := e.register(id, deviceToken(e.clk, id, key1), "")
		if wantRA[i] == "" {
			if r.status != http.StatusAccepted {
				t.Fatalf("%s: %d", id, r.status)
			}
			continue
		}
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != wantRA[i] || r.header.Get("x-ms-error-code") != "429001" {
			t.Fatalf("%s: %d retry-after %q", id, r.status, r.header.Get("Retry-After"))
		}
	}
	// d2 comes back 1 s early: still throttled, told the rest, counted as early.
	e.clk.Advance(19 * time.Second)
	r := e.register("d2", deviceToken(e.clk, "d2", key1), "")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "1" {
		t.Fatalf("early d2: %d %q", r.status, r.header.Get("Retry-After"))
	}
	// d1 obeyed (10 s): admitted; d2 and d3 at their times: admitted.
	for _, step := range []struct {
		at time.Duration
		id string
	}{{0, "d1"}, {1 * time.Second, "d2"}, {10 * time.Second, "d3"}} {
		e.clk.Advance(step.at)
		if r := e.register(step.id, deviceToken(e.clk, step.id, key1), ""); r.status != http.StatusAccepted {
			t.Fatalf("%s back in time: %d %s", step.id, r.status, r.body)
		}
	}
	s := e.svc.Stats()
	if s.Throttled != 4 || s.Admitted != 4 || s.Early != 1 || s.Registrations != 8 {
		t.Errorf("stats %+v", s)
	}
}

func TestQuotaCountsLookups(t *testing.T) {
	for _, exempt := range []bool{false, true} {
		t.Run(fmt.Sprintf("exempt=%v", exempt), func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Quota = Quota{Limit: 2, Burst: -1, ExemptLookups: exempt} })
			e.mustPut(symmetricEnrollment("d0", key1))
			tok := deviceToken(e.clk, "d0", key1)
			e.register("d0", tok, "")
			r := e.lookup("d0", tok)
			if exempt {
				if r.status != http.StatusOK {
					t.Errorf("exempt lookup: %d", r.status)
				}
			} else if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "30" {
				t.Errorf("counted lookup: %d %q", r.status, r.header.Get("Retry-After"))
			}
		})
	}
}

// event is a device's next request in the storm simulation.
type event struct {
	at time.Time
	id string
}

type eventQueue []event

func (q eventQueue) Len() int           { return len(q) }
func (q eventQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q eventQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)        { *q = append(*q, x.(event)) }
func (q *eventQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// TestQuotaFleetStorm: a fleet larger than the quota boots at once; every
// device obeys Retry-After (plus a little network delay). None is throttled
// twice, none is early, and no window holds more than 1.2 × the quota.
func TestQuotaFleetStorm(t *testing.T) {
	const devices, limit = 400, 100
	e := newEnv(t, func(c *Config) { c.Quota = Quota{Limit: limit, Window: time.Minute} })
	if _, err := e.svc.PutEnrollmentGroup(EnrollmentGroup{EnrollmentGroupID: "fleet",
		Attestation: &AttestationMechanism{Type: AttestationSymmetricKey, SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: key1}}}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	start := e.clk.Now()
	q := &eventQueue{}
	keys := map[string]string{}
	for i := 0; i < devices; i++ {
		id := fmt.Sprintf("gw-%03d", i)
		keys[id], _ = DeriveGroupKey(key1, id)
		heap.Push(q, event{at: start.Add(time.Duration(rng.Int63n(int64(5 * time.Second)))), id: id})
	}
	throttled := map[string]int{}
	admitted := 0
	for q.Len() > 0 {
		ev := heap.Pop(q).(event)
		e.clk.Advance(ev.at.Sub(e.clk.Now()))
		rp := e.svc.handleDevice(t.Context(), deviceRequest{kind: kindRegister, scope: testScope, regID: ev.id,
			creds: deviceCreds{SAS: deviceToken(e.clk, ev.id, keys[ev.id])}, transport: "test"})
		switch rp.status {
		case http.StatusAccepted:
			admitted++
		case http.StatusTooManyRequests:
			throttled[ev.id]++
			delay := time.Duration(rp.retryAfter)*time.Second + time.Duration(rng.Int63n(int64(300*time.Millisecond)))
			heap.Push(q, event{at: e.clk.Now().Add(delay), id: ev.id})
		default:
			t.Fatalf("%s: %d %+v", ev.id, rp.status, rp.body)
		}
	}
	for id, n := range throttled {
		if n > 1 {
			t.Errorf("%s obeyed Retry-After and was throttled %d times", id, n)
		}
	}
	s := e.svc.Stats()
	if admitted != devices || s.Early != 0 || s.Admitted != devices {
		t.Errorf("admitted %d, stats %+v", admitted, s)
	}
	if s.PeakPerWindow > limit*12/10 {
		t.Errorf("peak %d per window, quota %d", s.PeakPerWindow, limit)
	}
	if took := e.clk.Now().Sub(start); took > 5*time.Minute {
		t.Errorf("storm took %v for %d devices at %d/min", took, devices, limit)
	}
	t.Logf("peak %d/min, %d throttled, done after %v", s.PeakPerWindow, s.Throttled, e.clk.Now().Sub(start))
}

func TestLimiterSchedule(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(Quota{Limit: 60, Window: time.Minute, Burst: 2})
	var got []string
	for i := 0; i < 6; i++ {
		ok, at, _ := l.admit(strconv.Itoa(i), now)
		if ok {
			got = append(got, "ok")
		} else {
			got = append(got, at.Sub(now).String())
		}
	}
	want := []string{"ok", "ok", "ok", "1s", "2s", "3s"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("schedule %v, want %v", got, want)
	}
	// A held slot is honoured on time and refused early.
	if ok, at, early := l.admit("4", now.Add(time.Second)); ok || !early || !at.Equal(now.Add(2*time.Second)) {
		t.Errorf("early return: ok=%v early=%v at=%v", ok, early, at)
	}
	if ok, _, _ := l.admit("4", now.Add(2*time.Second)); !ok {
		t.Error("return on time refused")
	}
	// Unclaimed slots expire after a window.
	l.admit("x", now.Add(3*time.Minute))
	if _, held := l.reserved["5"]; held {
		t.Error("slot of a device that never came back was kept")
	}
}

func TestPeakPerWindow(t *testing.T) {
	secs := []SecondStat{{Unix: 0, Admitted: 5}, {Unix: 30, Admitted: 5}, {Unix: 59, Admitted: 5}, {Unix: 60, Admitted: 1}, {Unix: 200, Admitted: 7}}
	if got := peakPerWindow(secs, time.Minute); got != 15 {
		t.Errorf("peak %d, want 15", got)
	}
	if got := peakPerWindow(nil, time.Minute); got != 0 {
		t.Errorf("empty peak %d", got)
	}
}

func TestFaults(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Faults = &Faults{
			Throttle: func(id string) (time.Duration, bool) { return 6200 * time.Millisecond, id == "slowpoke" },
			Fail5xx:  func(id string) (int, bool) { return http.StatusServiceUnavailable, id == "broken" },
		}
	})
	for _, id := range []string{"slowpoke", "broken", "fine"} {
		e.mustPut(symmetricEnrollment(id, key1))
	}
	tests := []struct {
		id         string
		want       int
		retryAfter string
		errorCode  string
	}{
		{"slowpoke", http.StatusTooManyRequests, "7", "429001"},
		{"broken", http.StatusServiceUnavailable, "", "503000"},
		{"fine", http.StatusAccepted, "1", ""},
	}
	for _, tc := range tests {
		r := e.register(tc.id, deviceToken(e.clk, tc.id, key1), "")
		if r.status != tc.want || r.header.Get("Retry-After") != tc.retryAfter || r.header.Get("x-ms-error-code") != tc.errorCode {
			t.Errorf("%s: %d retry-after %q code %q", tc.id, r.status, r.header.Get("Retry-After"), r.header.Get("x-ms-error-code"))
		}
	}
	// Faults come before authentication: even a bad token sees them.
	if r := e.register("broken", "junk", ""); r.status != http.StatusServiceUnavailable {
		t.Errorf("fault after auth: %d", r.status)
	}
	e.clk.Advance(3 * time.Second)
	e.register("slowpoke", deviceToken(e.clk, "slowpoke", key1), "")
	s := e.svc.Stats()
	if s.FaultThrottle != 2 || s.Fault5xx != 2 || s.Early != 1 {
		t.Errorf("stats %+v", s)
	}
}
