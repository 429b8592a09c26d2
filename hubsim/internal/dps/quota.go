package dps

import (
	"fmt"
	"maps"
	"sort"
	"time"
)

// Quota limits device registrations per ID scope. DPS documents its default
// as 1,000 device registrations per minute per service unit
// [MicrosoftDocs/azure-docs includes/iot-dps-limits.md].
//
// The limiter is a generic cell-rate algorithm with reservations: admissions
// are spaced Window/Limit apart on a virtual schedule that may run up to
// Burst requests ahead of real time. A request that finds no room is given
// the next free slot on the schedule and told, as a whole number of seconds
// rounded up, when it is; the slot is held for that device for one Window,
// and it is admitted if it returns no earlier. So a device that obeys the
// Retry-After is never throttled again, and any Window holds at most
// Limit + Burst + 1 admissions on the schedule (arrivals can trail their
// slot by the rounding, under one second).
type Quota struct {
	// Limit is the number of requests admitted per Window per ID scope; 0 = no limit.
	Limit int
	// Window defaults to one minute.
	Window time.Duration
	// Burst is how many requests beyond the smooth rate may be admitted back
	// to back; 0 means Limit/10, negative means none.
	Burst int
	// ExemptLookups stops registration status lookups from counting and being
	// throttled. By default they count like registrations (the device-side
	// rule porthole plans for); Azure's documentation describes the lookup
	// limit as independent of the registration limit
	// [MicrosoftDocs/azure-docs articles/iot-hub/iot-hub-ha-dr.md, "Always query status…"].
	ExemptLookups bool
}

func (q Quota) validate() error {
	if q.Limit < 0 || q.Window < 0 {
		return fmt.Errorf("%w: quota limit and window must not be negative", ErrInvalid)
	}
	return nil
}

func (q Quota) window() time.Duration {
	if q.Window <= 0 {
		return time.Minute
	}
	return q.Window
}

func (q Quota) burst() int {
	switch {
	case q.Burst < 0:
		return 0
	case q.Burst == 0:
		return q.Limit / 10
	}
	return q.Burst
}

// limiter is one ID scope's schedule. Guarded by Service.mu.
type limiter struct {
	spacing   time.Duration
	tolerance time.Duration        // Burst × spacing
	tat       time.Time            // theoretical arrival time of the next slot
	reserved  map[string]time.Time // device → its held slot
	window    time.Duration
	lastSweep time.Time
}

func newLimiter(q Quota) *limiter {
	w := q.window()
	sp := w / time.Duration(q.Limit)
	if sp <= 0 {
		sp = 1
	}
	return &limiter{spacing: sp, tolerance: time.Duration(q.burst()) * sp, reserved: map[string]time.Time{}, window: w}
}

// admit decides one request of device at now. It returns ok, or the time the
// device may come back (its reserved slot) and whether it came early for a
// slot it already held.
func (l *limiter) admit(device string, now time.Time) (ok bool, retryAt time.Time, early bool) {
	l.sweep(now)
	if slot, held := l.reserved[device]; held {
		if !now.Before(slot) {
			delete(l.reserved, device)
			return true, time.Time{}, false
		}
		return false, slot, true
	}
	if l.tat.Before(now) {
		l.tat = now
	}
	// The earliest time this request's slot may be used.
	slot := l.tat.Add(-l.tolerance)
	l.tat = l.tat.Add(l.spacing)
	if !now.Before(slot) {
		return true, time.Time{}, false
	}
	l.reserved[device] = slot
	return false, slot, false
}

// sweep drops slots held longer than a window past their time.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < l.window {
		return
	}
	l.lastSweep = now
	for d, slot := range l.reserved {
		if now.Sub(slot) > l.window {
			delete(l.reserved, d)
		}
	}
}

// SecondStat counts device requests in one wall-clock second.
type SecondStat struct {
	Unix      int64 // the second, Unix time
	Requests  int   // device requests of any kind
	Admitted  int   // requests that counted against the quota and were admitted
	Throttled int   // 429s sent (quota or fault)
}

// Stats is what the service has seen of devices.
type Stats struct {
	Requests      int // device requests of any kind (register, poll, lookup)
	Registrations int // register requests
	Lookups       int // status lookups
	Polls         int // operation status polls
	Admitted      int // requests counted against the quota and admitted
	Throttled     int // 429s sent because of the quota
	FaultThrottle int // 429s sent by Faults.Throttle
	Fault5xx      int // errors sent by Faults.Fail5xx
	// Early counts requests that came before the Retry-After of the 429 we
	// last sent that device had passed: a misbehaving client.
	Early int
	// EarlyPolls counts polls that came before the retry-after of the 202 we
	// last sent for that operation.
	EarlyPolls int
	// PeakPerWindow is the most admissions in any run of whole seconds as
	// long as Quota.Window (rounded up), over all ID scopes, since the
	// service started (including seconds PerSecond no longer lists).
	PeakPerWindow int
	// PerSecond lists every second with device traffic within the last
	// Config.StatsRetention, oldest first.
	PerSecond []SecondStat
	// RegistrationOutcomes counts finished registrations by status
	// (StatusAssigned, StatusFailed, StatusDisabled) and register requests
	// refused as OutcomeUnauthorized. Throttled register requests are in
	// Throttled and FaultThrottle.
	RegistrationOutcomes map[string]int
}

// OutcomeUnauthorized counts register requests whose credentials failed.
const OutcomeUnauthorized = "unauthorized"

// countOutcome counts a register request's outcome.
func (s *Service) countOutcome(k opKind, outcome string) {
	if k != kindRegister {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stats.RegistrationOutcomes == nil {
		s.stats.RegistrationOutcomes = map[string]int{}
	}
	s.stats.RegistrationOutcomes[outcome]++
}

// DefaultStatsRetention is the default of Config.StatsRetention.
const DefaultStatsRetention = 10 * time.Minute

// statsPruneEvery is how often (in seconds of the service clock) seconds
// older than the retention are dropped.
const statsPruneEvery = 60

// statsState holds the counters and a sliding window of per-second counts.
// Guarded by Service.mu.
type statsState struct {
	Stats
	perSecond map[int64]*SecondStat
	retain    int64 // seconds of perSecond kept behind the newest second seen
	window    time.Duration
	// prunedPeak is the peak over the windows that began before the oldest
	// kept second; they were complete when it was taken (retain ≥ 2 windows).
	prunedPeak int
	lastPrune  int64 // Unix second of the last prune (or 0)
}

func newStatsState(retention, window time.Duration) statsState {
	if retention == 0 {
		retention = DefaultStatsRetention
	}
	retention = max(retention, 2*window)
	return statsState{
		perSecond: map[int64]*SecondStat{},
		retain:    int64((retention + time.Second - 1) / time.Second),
		window:    window,
	}
}

func (st *statsState) second(now time.Time) *SecondStat {
	u := now.Unix()
	if u-st.lastPrune >= statsPruneEvery || u < st.lastPrune {
		st.prune(u)
	}
	p := st.perSecond[u]
	if p == nil {
		p = &SecondStat{Unix: u}
		st.perSecond[u] = p
	}
	return p
}

// prune forgets the seconds before now−retain, folding the windows that
// start among them into prunedPeak first. Such a window ends at most one
// window after its start, so before now: its counts are final (on a clock
// that does not go back).
func (st *statsState) prune(now int64) {
	st.lastPrune = now
	cutoff := now - st.retain
	old := false
	for u := range st.perSecond {
		if u < cutoff {
			old = true
			break
		}
	}
	if !old {
		return
	}
	st.prunedPeak = max(st.prunedPeak, peakPerWindow(st.sorted(), st.window))
	for u := range st.perSecond {
		if u < cutoff {
			delete(st.perSecond, u)
		}
	}
}

// sorted returns the kept seconds, oldest first.
func (st *statsState) sorted() []SecondStat {
	out := make([]SecondStat, 0, len(st.perSecond))
	for _, p := range st.perSecond {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Unix < out[j].Unix })
	return out
}

// Stats returns a snapshot of the request counters.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.stats.Stats
	out.RegistrationOutcomes = maps.Clone(out.RegistrationOutcomes)
	out.PerSecond = s.stats.sorted()
	out.PeakPerWindow = max(s.stats.prunedPeak, peakPerWindow(out.PerSecond, s.stats.window))
	return out
}

// peakPerWindow is the largest sum of Admitted over seconds [t, t+w).
func peakPerWindow(secs []SecondStat, w time.Duration) int {
	n := int64((w + time.Second - 1) / time.Second)
	peak, sum, j := 0, 0, 0
	for i := range secs {
		sum += secs[i].Admitted
		for secs[j].Unix <= secs[i].Unix-n {
			sum -= secs[j].Admitted
			j++
		}
		if sum > peak {
			peak = sum
		}
	}
	return peak
}
