package dps

import (
	"fmt"
	"math/rand"
	"net/http"
	"testing"
	"time"
)

// bruteForcePeak is the most admissions in any window of n whole seconds.
func bruteForcePeak(adm map[int64]int, n int64) int {
	peak := 0
	for start := range adm {
		for _, t := range []int64{start, start - n + 1} {
			sum := 0
			for u := t; u < t+n; u++ {
				sum += adm[u]
			}
			peak = max(peak, sum)
		}
	}
	return peak
}

// The per-second history stays bounded however long the service runs, and
// PeakPerWindow still covers the seconds it forgot.
func TestStatsBoundedWindow(t *testing.T) {
	tests := []struct {
		name      string
		retention time.Duration
		window    time.Duration
		seconds   int64 // simulated run
		burstAt   int64 // second of a burst well before the end (-1: none)
		gapEvery  int64 // quiet stretches every gapEvery seconds (0: none)
	}{
		{"default retention, early burst", 0, time.Minute, 3 * 3600, 100, 0},
		{"burst straddles a prune", 0, time.Minute, 2 * 3600, 659, 0},
		{"retention below two windows", time.Minute, 5 * time.Minute, 3600, 1200, 0},
		{"sparse traffic", 15 * time.Minute, 90 * time.Second, 4 * 3600, 3000, 700},
		{"no burst", 0, time.Minute, 3600, -1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newStatsState(tc.retention, tc.window)
			rng := rand.New(rand.NewSource(7))
			base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
			all := map[int64]int{}
			maxKept := 0
			for i := int64(0); i < tc.seconds; i++ {
				if tc.gapEvery > 0 && (i/tc.gapEvery)%2 == 1 {
					continue
				}
				n := rng.Intn(4)
				if i >= tc.burstAt && i < tc.burstAt+3 && tc.burstAt >= 0 {
					n += 200
				}
				now := base.Add(time.Duration(i) * time.Second)
				for range n {
					st.second(now).Admitted++
					all[now.Unix()]++
				}
				st.second(now).Requests++ // a second with traffic but maybe no admission
				maxKept = max(maxKept, len(st.perSecond))
			}
			limit := int(st.retain) + statsPruneEvery + 1
			if maxKept > limit {
				t.Errorf("kept up to %d seconds, want ≤ %d", maxKept, limit)
			}
			if st.retain < int64(2*tc.window/time.Second) {
				t.Errorf("retain %d s is less than two windows", st.retain)
			}
			secs := st.sorted()
			got := max(st.prunedPeak, peakPerWindow(secs, tc.window))
			n := int64((tc.window + time.Second - 1) / time.Second)
			if want := bruteForcePeak(all, n); got != want {
				t.Errorf("peak %d, want %d", got, want)
			}
			newest := base.Add(time.Duration(tc.seconds-1) * time.Second).Unix()
			if len(secs) == 0 || secs[0].Unix < newest-st.retain-statsPruneEvery {
				t.Errorf("oldest kept second %v is too old (newest %d, retain %d)", secs[:min(1, len(secs))], newest, st.retain)
			}
		})
	}
}

// Through the service: an early burst is remembered as the peak after its
// seconds have left PerSecond.
func TestStatsForgetOldSeconds(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.svc.PutEnrollmentGroup(EnrollmentGroup{EnrollmentGroupID: "fleet",
		Attestation: &AttestationMechanism{Type: AttestationSymmetricKey, SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: key1}}}); err != nil {
		t.Fatal(err)
	}
	register := func(id string) {
		t.Helper()
		k, _ := DeriveGroupKey(key1, id)
		rp := e.svc.handleDevice(t.Context(), deviceRequest{kind: kindRegister, scope: testScope, regID: id,
			creds: deviceCreds{SAS: deviceToken(e.clk, id, k)}, transport: "test"})
		if rp.status != http.StatusAccepted {
			t.Fatalf("%s: %d", id, rp.status)
		}
	}
	start := e.clk.Now()
	for i := range 30 {
		register(fmt.Sprintf("burst-%02d", i))
	}
	e.clk.Advance(2 * time.Hour)
	for i := range 5 {
		register(fmt.Sprintf("late-%d", i))
		e.clk.Advance(time.Second)
	}
	s := e.svc.Stats()
	if s.PeakPerWindow != 30 || s.Admitted != 35 {
		t.Errorf("peak %d admitted %d, want 30 and 35", s.PeakPerWindow, s.Admitted)
	}
	if len(s.PerSecond) != 5 || s.PerSecond[0].Unix <= start.Unix() {
		t.Errorf("PerSecond %+v, want only the 5 late seconds", s.PerSecond)
	}
}

func TestStatsRetentionInvalid(t *testing.T) {
	if _, err := New(Config{Hubs: newFakeHubs(hubA), StatsRetention: -time.Second}); err == nil {
		t.Error("negative StatsRetention accepted")
	}
}
