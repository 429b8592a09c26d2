package fleetplan

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is what the planner measured of one scenario. Times are from the
// scenario's start (time zero) on the virtual clock.
type Result struct {
	Scenario  Scenario
	Converged int // devices serving (after registering again, when the event asks for it)
	// T50..T100: when that share of the fleet had converged (-1: never,
	// within the horizon).
	T50, T90, T99, T100 time.Duration
	// Assigned100 is when the last device's registration was done (the
	// fleet storm's "time to converge"; -1 when not all registered).
	Assigned100 time.Duration
	// PeakPerMinute is the most DPS requests admitted against the quota
	// (registrations and lookups) in any 60 s run of whole seconds.
	PeakPerMinute int
	Throttled429  int // DPS 429s
	Registrations int // register requests (admitted or not)
	Lookups       int
	HubThrottled  int // connects refused by the hubs' throttle (CONNACK 3)
	HubRefused    int // connects refused as not authorized (CONNACK 5)
	HubDown       int // connects refused while the hubs were down
	// Retries per device: failed attempts of any kind after its start.
	RetriesP50, RetriesP99, RetriesMax int
	// WaitedLonger counts devices whose own wait (start to convergence,
	// or to the horizon) was longer than Scenario.WaitedLongerThan.
	WaitedLonger int
	// T90 per DPS transport.
	T90HTTPS, T90MQTT time.Duration

	// HubDevices is how many device identities each hub's registry holds
	// at the end (DPS's reprovisioning moves them), by host name.
	HubDevices map[string]int

	// Series, per second since time zero.
	AdmittedPerSecond, ThrottledPerSecond, ConvergedPerSecond []int
	// Retries is the retry count of every device.
	Retries []int
	// Wall is the real time the run took (not part of the CSV).
	Wall time.Duration
}

// pct returns the time by which share p of n devices had converged.
func pct(sorted []time.Duration, n int, p float64) time.Duration {
	k := int(p*float64(n)+0.999999) - 1
	k = max(k, 0)
	if k >= len(sorted) {
		return -1
	}
	return sorted[k]
}

func (s *sim) result() *Result {
	sc := s.sc
	r := &Result{Scenario: sc, AdmittedPerSecond: s.admitted, ThrottledPerSecond: s.throttled, ConvergedPerSecond: s.convergedPer}
	var conv, convHTTPS, convMQTT []time.Duration
	nHTTPS, nMQTT := 0, 0
	end := s.t0.Add(sc.Horizon)
	var lastAssigned time.Duration
	allAssigned := true
	for _, d := range s.devs {
		r.Retries = append(r.Retries, d.retries)
		mqtt := d.transport == "mqtt"
		if mqtt {
			nMQTT++
		} else {
			nHTTPS++
		}
		waitedUntil := end
		if d.converged {
			t := d.convergedAt.Sub(s.t0)
			conv = append(conv, t)
			if mqtt {
				convMQTT = append(convMQTT, t)
			} else {
				convHTTPS = append(convHTTPS, t)
			}
			waitedUntil = d.convergedAt
		}
		if waitedUntil.Sub(d.start) > sc.WaitedLongerThan {
			r.WaitedLonger++
		}
		if d.assignedAt.IsZero() || (d.started && !d.registered) {
			allAssigned = false
		} else {
			lastAssigned = max(lastAssigned, d.assignedAt.Sub(s.t0))
		}
	}
	slices.Sort(conv)
	slices.Sort(convHTTPS)
	slices.Sort(convMQTT)
	n := len(s.devs)
	r.Converged = len(conv)
	r.T50, r.T90, r.T99, r.T100 = pct(conv, n, 0.5), pct(conv, n, 0.9), pct(conv, n, 0.99), pct(conv, n, 1)
	r.T90HTTPS, r.T90MQTT = pct(convHTTPS, nHTTPS, 0.9), pct(convMQTT, nMQTT, 0.9)
	if nHTTPS == 0 {
		r.T90HTTPS = 0
	}
	if nMQTT == 0 {
		r.T90MQTT = 0
	}
	r.Assigned100 = -1
	if allAssigned {
		r.Assigned100 = lastAssigned
	}
	r.PeakPerMinute = peakWindow(s.admitted, 60)
	r.HubDevices = map[string]int{}
	for _, h := range s.hubs.Hubs() {
		r.HubDevices[h.HostName()] = len(h.ListDevices(context.Background()))
	}
	r.Throttled429, r.Registrations, r.Lookups = s.counts.throttled429, s.counts.registrations, s.counts.lookups
	r.HubThrottled, r.HubRefused, r.HubDown = s.counts.hubThrottled, s.counts.hubRefused, s.counts.hubDown
	rs := slices.Clone(r.Retries)
	slices.Sort(rs)
	r.RetriesP50, r.RetriesP99, r.RetriesMax = rs[pctIndex(len(rs), 0.5)], rs[pctIndex(len(rs), 0.99)], rs[len(rs)-1]
	return r
}

func pctIndex(n int, p float64) int { return max(int(p*float64(n)+0.999999)-1, 0) }

// peakWindow is the largest sum over w consecutive entries.
func peakWindow(perSecond []int, w int) int {
	peak, sum := 0, 0
	for i, v := range perSecond {
		sum += v
		if i >= w {
			sum -= perSecond[i-w]
		}
		peak = max(peak, sum)
	}
	return peak
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(time.Second).String()
}

func secs(d time.Duration) string {
	if d < 0 {
		return ""
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64)
}

// CSVHeader names the CSV columns.
var CSVHeader = []string{"scenario", "event", "devices", "seed", "converged", "t50_s", "t90_s", "t99_s", "t100_s",
	"assigned100_s", "peak_admitted_per_min", "quota_per_min", "peak_vs_quota", "dps_429", "registrations", "lookups",
	"hub_throttled", "hub_refused", "hub_down_refusals", "retries_p50", "retries_p99", "retries_max",
	"waited_longer_than_s", "waited_longer_count", "t90_https_s", "t90_mqtt_s"}

func (r *Result) csvRow() []string {
	sc := r.Scenario
	return []string{sc.Name, sc.Event, strconv.Itoa(sc.Devices), strconv.FormatUint(sc.Seed, 10), strconv.Itoa(r.Converged),
		secs(r.T50), secs(r.T90), secs(r.T99), secs(r.T100), secs(r.Assigned100),
		strconv.Itoa(r.PeakPerMinute), strconv.Itoa(sc.Quota.PerMinute), strconv.FormatFloat(float64(r.PeakPerMinute)/float64(max(sc.Quota.PerMinute, 1)), 'f', 3, 64),
		strconv.Itoa(r.Throttled429), strconv.Itoa(r.Registrations), strconv.Itoa(r.Lookups),
		strconv.Itoa(r.HubThrottled), strconv.Itoa(r.HubRefused), strconv.Itoa(r.HubDown),
		strconv.Itoa(r.RetriesP50), strconv.Itoa(r.RetriesP99), strconv.Itoa(r.RetriesMax),
		secs(sc.WaitedLongerThan), strconv.Itoa(r.WaitedLonger), secs(r.T90HTTPS), secs(r.T90MQTT)}
}

// WriteCSV writes one row per result, after a header.
func WriteCSV(w io.Writer, rs []*Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, r := range rs {
		if err := cw.Write(r.csvRow()); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// Table renders the results side by side, one column per scenario.
func Table(rs []*Result) string {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 2, 8, 2, ' ', 0)
	row := func(label string, f func(r *Result) string) {
		cells := []string{label}
		for _, r := range rs {
			cells = append(cells, f(r))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	row("scenario", func(r *Result) string { return r.Scenario.Name })
	row("event", func(r *Result) string {
		sc := r.Scenario
		s := sc.Event
		switch {
		case sc.Event == EventBoot && sc.NoCache:
			s += " (no cache: register)"
		case sc.Event == EventBoot && sc.LookupFirst:
			s += " (lookup first)"
		case sc.Event == EventBoot:
			s += " (cached hub)"
		case sc.Event == EventOutage:
			s += " " + sc.Outage.String()
		}
		if sc.Waves.Size > 0 {
			s += fmt.Sprintf(", waves of %d every %s", sc.Waves.Size, sc.Waves.Interval)
		} else {
			s += ", all at once"
		}
		return s
	})
	row("devices (MQTT share)", func(r *Result) string {
		return fmt.Sprintf("%d (%d%% MQTT)", r.Scenario.Devices, *r.Scenario.MQTTPercent)
	})
	row("DPS quota / hubs × connects/s", func(r *Result) string {
		q := fmt.Sprintf("%d/min", r.Scenario.Quota.PerMinute)
		for _, c := range r.Scenario.QuotaChanges {
			q += fmt.Sprintf(" → %d at %s", c.PerMinute, c.At)
		}
		return fmt.Sprintf("%s / %d × %g", q, r.Scenario.Hubs, r.Scenario.HubConnectsPerSecond)
	})
	row("converged 50% / 90%", func(r *Result) string { return fmtDur(r.T50) + " / " + fmtDur(r.T90) })
	row("converged 99% / 100%", func(r *Result) string { return fmtDur(r.T99) + " / " + fmtDur(r.T100) })
	row("converged devices", func(r *Result) string { return fmt.Sprintf("%d / %d", r.Converged, r.Scenario.Devices) })
	row("90% converged HTTPS / MQTT", func(r *Result) string { return fmtDur(r.T90HTTPS) + " / " + fmtDur(r.T90MQTT) })
	row("peak admitted/min vs quota", func(r *Result) string {
		return fmt.Sprintf("%d = %.2f × quota", r.PeakPerMinute, float64(r.PeakPerMinute)/float64(max(r.Scenario.Quota.PerMinute, 1)))
	})
	row("DPS 429s", func(r *Result) string { return strconv.Itoa(r.Throttled429) })
	row("DPS registrations / lookups", func(r *Result) string { return fmt.Sprintf("%d / %d", r.Registrations, r.Lookups) })
	row("hub connects throttled / refused / down", func(r *Result) string {
		return fmt.Sprintf("%d / %d / %d", r.HubThrottled, r.HubRefused, r.HubDown)
	})
	row("hub registries (old hub / new hubs)", func(r *Result) string {
		n := 0
		for h, c := range r.HubDevices {
			if h != oldHub {
				n += c
			}
		}
		return fmt.Sprintf("%d / %d", r.HubDevices[oldHub], n)
	})
	row("retries per device p50/p99/max", func(r *Result) string {
		return fmt.Sprintf("%d / %d / %d", r.RetriesP50, r.RetriesP99, r.RetriesMax)
	})
	row("devices waiting longer than X", func(r *Result) string {
		return fmt.Sprintf("%d (X = %s)", r.WaitedLonger, r.Scenario.WaitedLongerThan)
	})
	row("simulation wall time", func(r *Result) string { return r.Wall.Round(10 * time.Millisecond).String() })
	tw.Flush()
	return b.String()
}
