package fleetplan

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/porthole-iot/porthole/agent/fleetsim"
	"github.com/porthole-iot/porthole/hubsim/internal/broker"
	"github.com/porthole-iot/porthole/hubsim/internal/dps"
	"github.com/porthole-iot/porthole/hubsim/internal/hub"
	"github.com/porthole-iot/porthole/sdk/auth"
	sdkdps "github.com/porthole-iot/porthole/sdk/dps"
	"github.com/porthole-iot/porthole/sdk/iothub"
	"github.com/porthole-iot/porthole/sdk/retry"
)

const (
	idScope  = "0ne00fleet1"
	groupID  = "fleet"
	oldHub   = "hub-old.planner.example"
	tokenTTL = time.Hour
	// groupKey is the simulated enrollment group's key; devices derive
	// theirs from it, as the fleet storm's do.
	groupKey = "cGxhbm5lci1mbGVldC1ncm91cC1rZXktbm90LWEtc2VjcmV0LTAwMA=="
)

// epoch is time zero of every scenario (a fixed date: results must not
// depend on when the planner runs).
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func hubName(i int) string { return "hub-" + strconv.Itoa(i+1) + ".planner.example" }

// vclock is the virtual clock every part reads: DPS, the hubs and the
// agents' retry schedules. Only the driver moves it.
type vclock struct{ now time.Time }

func (c *vclock) Now() time.Time { return c.now }
func (c *vclock) NewTimer(time.Duration) retry.Timer {
	panic("fleetplan: a Machine never starts a timer; the driver waits")
}

// linkedHubs is DPS's view of the hub set: the same hubs, with the list
// DPS allocates over switchable (a fleet moving to new hubs).
type linkedHubs struct {
	*hub.Set
	linked []string
}

func (l *linkedHubs) HostNames() []string { return l.linked }

type evKind uint8

const (
	evStart    evKind = iota + 1 // the device's part of the event begins
	evWake                       // a wait or a DPS round trip is over
	evRegRetry                   // the DPS client retries a registration (session up)
	evQuota                      // a quota change (dev = index into QuotaChanges)
	evHubsDown                   // the outage begins
	evHubsUp                     // the outage ends
)

type event struct {
	at   time.Time
	seq  uint64
	kind evKind
	dev  int
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// device is one simulated device: the agent's Machine and what the
// planner measures of it.
type device struct {
	id, key   string
	transport string
	m         *fleetsim.Machine
	store     *fleetsim.MemStore

	started     bool
	start       time.Time // its part of the event began
	needReg     bool      // converges only after a registration
	registered  bool      // a registration succeeded after start
	converged   bool
	convergedAt time.Time
	assignedAt  time.Time
	retries     int

	// pending is a DPS round trip in flight: the result is known (the
	// call was answered at once) but the device sees it this much later.
	pending time.Duration
	// regErr is the last registration failure; regSched the DPS client's
	// own retry schedule for one Register call (sdk/dps Register retries
	// inside the call; the driver runs that loop while a session is up).
	regErr   error
	regSched *retry.Schedule
}

// sim runs one scenario.
type sim struct {
	sc     Scenario
	clock  *vclock
	t0     time.Time
	rng    *rand.Rand
	policy retry.Policy
	svc    *dps.Service
	hubs   *hub.Set
	linked *linkedHubs
	devs   []*device
	events eventHeap
	seq    uint64
	down   bool // the hubs refuse connections (EventOutage)

	// per second since t0
	admitted, throttled, requests, connects, convergedPer []int
	counts                                                counts
}

type counts struct {
	registrations, lookups, throttled429, hubRefused, hubThrottled, hubDown int
}

// Run simulates one scenario.
func Run(ctx context.Context, sc Scenario) (*Result, error) {
	sc = sc.withDefaults()
	if err := sc.validate(); err != nil {
		return nil, err
	}
	wall := time.Now()
	s, err := newSim(sc)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if err := s.warmUp(ctx); err != nil {
		return nil, err
	}
	if err := s.run(ctx); err != nil {
		return nil, err
	}
	r := s.result()
	r.Wall = time.Since(wall)
	return r, nil
}

func newSim(sc Scenario) (*sim, error) {
	clock := &vclock{now: epoch}
	s := &sim{sc: sc, clock: clock, t0: epoch, rng: rand.New(rand.NewPCG(sc.Seed, sc.Seed^0x9e3779b97f4a7c15))}
	s.policy = retry.Policy{Clock: clock, Rand: s.rng.Float64}
	hubCfgs := []hub.HubConfig{{HostName: oldHub}}
	var names []string
	for i := range sc.Hubs {
		hubCfgs = append(hubCfgs, hub.HubConfig{HostName: hubName(i)})
		names = append(names, hubName(i))
	}
	rate := sc.HubConnectsPerSecond
	if rate < 0 {
		rate = 0
	}
	set, err := hub.NewSet(hub.Config{
		Hubs:              hubCfgs,
		Now:               clock.Now,
		AfterFunc:         func(time.Duration, func()) func() bool { return func() bool { return true } },
		ConnectsPerSecond: rate,
		Rand:              s.rng2(),
	})
	if err != nil {
		return nil, err
	}
	s.hubs = set
	s.linked = &linkedHubs{Set: set, linked: names}
	if sc.Event == EventReprovision {
		s.linked.linked = []string{oldHub} // where the fleet is before it moves
	}
	s.svc, err = dps.New(dps.Config{IDScopes: []string{idScope}, Hubs: s.linked, Now: clock.Now,
		Quota: dps.Quota{Limit: sc.Quota.PerMinute, Window: time.Minute, Burst: sc.Quota.Burst}})
	if err != nil {
		set.Close()
		return nil, err
	}
	if _, err := s.svc.PutEnrollmentGroup(dps.EnrollmentGroup{EnrollmentGroupID: groupID,
		Attestation: &dps.AttestationMechanism{Type: dps.AttestationSymmetricKey, SymmetricKey: &dps.SymmetricKeyAttestation{PrimaryKey: groupKey}}}); err != nil {
		s.close()
		return nil, err
	}
	mqtt := *sc.MQTTPercent
	s.devs = make([]*device, sc.Devices)
	for i := range s.devs {
		d := &device{id: fmt.Sprintf("dev-%07d", i), transport: "https", store: &fleetsim.MemStore{}}
		if i%100 < mqtt {
			d.transport = "mqtt"
		}
		if d.key, err = auth.DeriveGroupKey(groupKey, d.id); err != nil {
			s.close()
			return nil, err
		}
		s.devs[i] = d
	}
	return s, nil
}

// rng2 is a deterministic byte source for the hubs' generated keys.
func (s *sim) rng2() *rand.ChaCha8 {
	var seed [32]byte
	for i := range 4 {
		v := s.rng.Uint64()
		for j := range 8 {
			seed[i*8+j] = byte(v >> (8 * j))
		}
	}
	return rand.NewChaCha8(seed)
}

func (s *sim) close() {
	s.svc.Close()
	s.hubs.Close()
}

func (s *sim) newMachine(i int) (*fleetsim.Machine, error) {
	d := s.devs[i]
	p, err := fleetsim.New(fleetsim.Config{
		Identity:          fleetsim.Identity{IDScope: idScope, RegistrationID: d.id},
		DPS:               dpsAdapter{s, i},
		Store:             d.store,
		Connect:           s.connect,
		LookupFirst:       s.sc.LookupFirst,
		RetryCachedHubFor: s.sc.RetryCachedHubFor,
		Retry:             s.policy,
	})
	if err != nil {
		return nil, err
	}
	return p.NewMachine(), nil
}

// warmUp puts the fleet where the scenario finds it, before time zero:
// registered with DPS (no quota) and, for reprovision and outage,
// connected — spaced at the hubs' connection rate.
func (s *sim) warmUp(ctx context.Context) error {
	sc := s.sc
	if sc.Event == EventBoot && sc.NoCache {
		return nil
	}
	if err := s.svc.SetQuota(dps.Quota{Window: time.Minute}); err != nil {
		return err
	}
	connect := sc.Event != EventBoot
	spacing := time.Millisecond
	if connect && sc.HubConnectsPerSecond > 0 {
		spacing = time.Duration(float64(time.Second) / sc.HubConnectsPerSecond)
	}
	s.clock.now = s.t0.Add(-time.Duration(len(s.devs)+100) * spacing)
	for i, d := range s.devs {
		s.clock.now = s.clock.now.Add(spacing)
		a, err := dpsAdapter{s, i}.Register(ctx, nil)
		if err != nil {
			return fmt.Errorf("warm-up registration of %s: %w", d.id, err)
		}
		d.store.St = fleetsim.Cached{IDScope: idScope, RegistrationID: d.id, AssignedHub: a.AssignedHub, DeviceID: a.DeviceID,
			Substatus: a.Substatus, ETag: a.ETag}
		d.store.OK = true
		d.pending, d.registered = 0, false
		if !connect {
			continue
		}
		if d.m, err = s.newMachine(i); err != nil {
			return err
		}
		if st := d.m.Start(); st != fleetsim.StateConnect {
			return fmt.Errorf("warm-up of %s: start in %v", d.id, st)
		}
		if st := d.m.Step(ctx); st != fleetsim.StateServe {
			return fmt.Errorf("warm-up of %s: connect ended in %v", d.id, st)
		}
	}
	s.clock.now = s.t0
	if sc.Event == EventReprovision {
		s.linked.linked = s.linked.linked[:0]
		for i := range sc.Hubs {
			s.linked.linked = append(s.linked.linked, hubName(i))
		}
	}
	return s.svc.SetQuota(dps.Quota{Limit: sc.Quota.PerMinute, Window: time.Minute, Burst: sc.Quota.Burst})
}

func (s *sim) push(at time.Time, k evKind, dev int) {
	s.seq++
	heap.Push(&s.events, event{at: at, seq: s.seq, kind: k, dev: dev})
}

// second is the index of now's second since t0 (-1 before t0).
func (s *sim) second() int {
	d := s.clock.now.Sub(s.t0)
	if d < 0 {
		return -1
	}
	return int(d / time.Second)
}

func bump(series *[]int, i int) {
	if i < 0 {
		return
	}
	for len(*series) <= i {
		*series = append(*series, 0)
	}
	(*series)[i]++
}

func (s *sim) run(ctx context.Context) error {
	sc := s.sc
	for i := range s.devs {
		at := s.t0
		if sc.Waves.Size > 0 {
			at = at.Add(time.Duration(i/sc.Waves.Size) * sc.Waves.Interval)
		}
		s.push(at, evStart, i)
	}
	for i, c := range sc.QuotaChanges {
		s.push(s.t0.Add(c.At), evQuota, i)
	}
	if sc.Event == EventOutage {
		s.push(s.t0, evHubsDown, 0)
		s.push(s.t0.Add(sc.Outage), evHubsUp, 0)
	}
	end := s.t0.Add(sc.Horizon)
	for s.events.Len() > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		ev := heap.Pop(&s.events).(event)
		if ev.at.After(end) {
			break
		}
		s.clock.now = ev.at
		switch ev.kind {
		case evQuota:
			c := sc.QuotaChanges[ev.dev]
			if err := s.svc.SetQuota(dps.Quota{Limit: c.PerMinute, Window: time.Minute, Burst: sc.Quota.Burst}); err != nil {
				return err
			}
		case evHubsDown:
			s.down = true
		case evHubsUp:
			s.down = false
		case evStart:
			if err := s.startDevice(ctx, ev.dev); err != nil {
				return err
			}
		case evWake:
			d := s.devs[ev.dev]
			if d.m.State() == fleetsim.StateWait {
				d.m.WaitOver()
			}
			s.drive(ctx, ev.dev)
		case evRegRetry:
			s.devs[ev.dev].m.Reprovision()
			s.drive(ctx, ev.dev)
		}
	}
	return nil
}

func (s *sim) startDevice(ctx context.Context, i int) error {
	d := s.devs[i]
	d.started, d.start = true, s.clock.now
	switch s.sc.Event {
	case EventReprovision:
		d.needReg = true
		d.regSched = s.policy.NewSchedule()
		d.m.Reprovision()
	case EventOutage:
		d.m.SessionEnded(fmt.Errorf("read: %w", syscall.ECONNRESET))
	case EventBoot:
		var err error
		if d.m, err = s.newMachine(i); err != nil {
			return err
		}
		d.m.Start()
	}
	s.drive(ctx, i)
	return nil
}

// drive runs device i's Machine until it waits or serves.
func (s *sim) drive(ctx context.Context, i int) {
	d := s.devs[i]
	for {
		switch st := d.m.State(); st {
		case fleetsim.StateRegister, fleetsim.StateLookup, fleetsim.StateConnect:
			if d.pending > 0 {
				// The answer of a DPS call reaches the device a round trip
				// (and, for a registration, a poll interval) later.
				s.push(s.clock.now.Add(d.pending), evWake, i)
				d.pending = 0
				return
			}
			d.m.Step(ctx)
		case fleetsim.StateWait:
			d.retries++
			s.push(s.clock.now.Add(d.m.Delay()), evWake, i)
			return
		case fleetsim.StateServe:
			if d.pending > 0 {
				s.push(s.clock.now.Add(d.pending), evWake, i)
				d.pending = 0
				return
			}
			if d.regErr != nil {
				// A registration failed while the session stayed up: the
				// DPS client would retry it inside Register with its own
				// schedule (sdk/dps), so the driver does, with the same.
				err := d.regErr
				d.regErr = nil
				d.retries++
				w, gerr := d.regSched.Next(err)
				if gerr == nil {
					s.push(s.clock.now.Add(w), evRegRetry, i)
				}
				return
			}
			if d.started && !d.converged && (!d.needReg || d.registered) {
				d.converged, d.convergedAt = true, s.clock.now
				bump(&s.convergedPer, s.second())
			}
			return
		default:
			return
		}
	}
}

// connect is the agent's Config.Connect: the network (down during an
// outage), then the hub's own decision (throttle, identity).
func (s *sim) connect(_ context.Context, a fleetsim.Assignment) (fleetsim.Session, error) {
	if s.clock.now.Before(s.t0) {
		// warm-up
	} else {
		bump(&s.connects, s.second())
	}
	if s.down {
		s.counts.hubDown++
		return nil, fmt.Errorf("dial %s: %w", a.AssignedHub, syscall.ECONNREFUSED)
	}
	err := s.hubs.AdmitConnect(a.AssignedHub, a.DeviceID)
	switch {
	case err == nil:
		return session{}, nil
	case errors.Is(err, broker.ErrServerUnavailable):
		s.counts.hubThrottled++
		return nil, &iothub.ConnectError{ReturnCode: iothub.ConnRefusedUnavailable}
	default:
		s.counts.hubRefused++
		return nil, &iothub.ConnectError{ReturnCode: iothub.ConnRefusedNotAuthorized}
	}
}

// session is a live hub session; the driver ends it itself.
type session struct{}

func (session) Done() <-chan struct{} { return nil }
func (session) Err() error            { return nil }
func (session) Close()                {}

// dpsAdapter is device i's DPS client: each call is one in-process
// request to hubsim's DPS, answered at once; a round trip and the poll
// wait are charged to the device by the driver (device.pending).
type dpsAdapter struct {
	s *sim
	i int
}

func (a dpsAdapter) call(ctx context.Context, op, opID string, body []byte) (dps.DeviceAnswer, error) {
	s, d := a.s, a.s.devs[a.i]
	tok, err := auth.DPSToken(idScope, d.id, d.key, s.clock.now.Add(tokenTTL))
	if err != nil {
		return dps.DeviceAnswer{}, err
	}
	ans, err := s.svc.Device(ctx, dps.DeviceCall{Op: op, IDScope: idScope, RegistrationID: d.id, SAS: tok, OperationID: opID, Body: body, Transport: d.transport})
	if err != nil {
		return ans, err
	}
	if op != dps.OpPoll && !s.clock.now.Before(s.t0) {
		sec := s.second()
		bump(&s.requests, sec)
		switch ans.Status {
		case http.StatusTooManyRequests:
			s.counts.throttled429++
			bump(&s.throttled, sec)
		case http.StatusUnauthorized, http.StatusBadRequest:
		default:
			bump(&s.admitted, sec)
		}
	}
	d.pending += a.latency()
	return ans, nil
}

func (a dpsAdapter) latency() time.Duration {
	if a.s.devs[a.i].transport == "mqtt" {
		return a.s.sc.Latency.MQTT
	}
	return a.s.sc.Latency.HTTPS
}

func statusError(ans dps.DeviceAnswer) error {
	e := &sdkdps.StatusError{StatusCode: ans.Status, RetryAfter: ans.RetryAfter, HasRetryAfter: ans.RetryAfter > 0}
	if ans.Error != nil {
		e.ErrorCode, e.Message, e.TrackingID = ans.Error.ErrorCode, ans.Error.Message, ans.Error.TrackingID
	}
	return e
}

func assignment(r *dps.DeviceRegistrationResult) fleetsim.Assignment {
	if r == nil {
		return fleetsim.Assignment{}
	}
	return fleetsim.Assignment{AssignedHub: r.AssignedHub, DeviceID: r.DeviceID, Status: r.Status, Substatus: r.Substatus, ETag: r.ETag}
}

// pollWait is sdk/dps's wait before polling: the 202's retry-after,
// within [1 s, 300 s], else its default.
func pollWait(ra time.Duration) time.Duration {
	if ra <= 0 {
		return sdkdps.DefaultPollInterval
	}
	return min(max(ra, time.Second), 300*time.Second)
}

// Register implements fleetsim.DPS: register, then poll once the 202's
// retry-after has passed (charged to the device; hubsim decides at once).
func (a dpsAdapter) Register(ctx context.Context, payload json.RawMessage) (fleetsim.Assignment, error) {
	s, d := a.s, a.s.devs[a.i]
	if !s.clock.now.Before(s.t0) {
		s.counts.registrations++
	}
	body, err := json.Marshal(struct {
		RegistrationID string          `json:"registrationId"`
		Payload        json.RawMessage `json:"payload,omitempty"`
	}{d.id, payload})
	if err != nil {
		return fleetsim.Assignment{}, err
	}
	ans, err := a.call(ctx, dps.OpRegister, "", body)
	if err != nil {
		return fleetsim.Assignment{}, err
	}
	if ans.Status == http.StatusAccepted {
		d.pending += pollWait(ans.RetryAfter)
		if ans, err = a.call(ctx, dps.OpPoll, ans.OperationID, nil); err != nil {
			return fleetsim.Assignment{}, err
		}
		if ans.Status == http.StatusAccepted {
			// hubsim decides when asked (AssignDelay 0): never here.
			return fleetsim.Assignment{}, errors.New("fleetplan: DPS still assigning after its retry-after")
		}
	}
	if ans.Status != http.StatusOK {
		err := statusError(ans)
		d.regErr = err
		return fleetsim.Assignment{}, err
	}
	if ans.OpStatus != dps.StatusAssigned {
		err := fmt.Errorf("registration %s: %w", ans.OpStatus, sdkdps.ErrFailed)
		d.regErr = err
		return fleetsim.Assignment{}, err
	}
	d.regErr = nil
	d.registered = d.started
	d.assignedAt = s.clock.now.Add(d.pending)
	return assignment(ans.Result), nil
}

// Lookup implements fleetsim.DPS.
func (a dpsAdapter) Lookup(ctx context.Context) (fleetsim.Assignment, error) {
	s, d := a.s, a.s.devs[a.i]
	if !s.clock.now.Before(s.t0) {
		s.counts.lookups++
	}
	ans, err := a.call(ctx, dps.OpLookup, "", []byte(`{"registrationId":"`+d.id+`"}`))
	if err != nil {
		return fleetsim.Assignment{}, err
	}
	if ans.Status != http.StatusOK {
		return fleetsim.Assignment{}, statusError(ans)
	}
	return assignment(ans.Result), nil
}
