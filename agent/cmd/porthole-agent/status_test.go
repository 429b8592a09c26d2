package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/bridge"
	"github.com/porthole-iot/porthole/agent/internal/daemon"
	"github.com/porthole-iot/porthole/agent/internal/provision"
)

// TestPrintStatus pins the text form of the status verb, in particular the
// failing and hint lines (the -json form carries the same fields).
func TestPrintStatus(t *testing.T) {
	started := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	since := time.Date(2025, 3, 1, 13, 2, 11, 0, time.UTC)
	base := func() *daemon.Status {
		return &daemon.Status{
			Version: "v1.0.0", ConfigFile: "/etc/porthole/agent.yaml", RegistrationID: "dev1",
			Started: started, Phase: provision.PhaseRegistering,
			Streams: bridge.Stats{Open: 1, Accepted: 2, Rejected: 3},
		}
	}
	for _, tc := range []struct {
		name    string
		mod     func(*daemon.Status)
		now     time.Time
		cfgErr  string
		want    []string
		notWant []string
	}{
		{
			name:    "healthy",
			mod:     func(*daemon.Status) {},
			now:     started.Add(90 * time.Minute),
			want:    []string{"agent         v1.0.0, running since 2025-03-01T12:00:00Z (up 1h30m0s)\n", "assigned      not yet\n", "streams       1 open, 2 accepted, 3 rejected\n"},
			notWant: []string{"failing", "hint", "last error", "next attempt", "config error"},
		},
		{
			name: "last error only",
			mod: func(s *daemon.Status) {
				s.LastError, s.LastErrorAt = "dial tcp: refused", since
			},
			want:    []string{"last error    2025-03-01T13:02:11Z: dial tcp: refused\n"},
			notWant: []string{"failing", "hint"},
		},
		{
			name: "failing with hint",
			mod: func(s *daemon.Status) {
				s.LastError, s.LastErrorAt = "401 Unauthorized", since.Add(time.Minute)
				s.Failing, s.FailingSince, s.Attempts = provision.StepDPS, since, 5
				s.Hint = "check the system clock"
				s.NextAttempt = since.Add(6 * time.Minute)
			},
			now: since.Add(5*time.Minute + 12*time.Second),
			want: []string{
				"failing       dps for 5m12s (since 2025-03-01T13:02:11Z, 5 attempts): 401 Unauthorized\n",
				"next attempt  in 48s (2025-03-01T13:08:11Z)\n",
				"hint          check the system clock\n",
			},
			notWant: []string{"last error"},
		},
		{
			name: "failing once, no error text",
			mod: func(s *daemon.Status) {
				s.Failing, s.FailingSince, s.Attempts = provision.StepHub, since, 1
			},
			now:     since.Add(3 * time.Second),
			want:    []string{"failing       hub for 3s (since 2025-03-01T13:02:11Z, 1 attempt)\n"},
			notWant: []string{"hint", "last error", "attempts"},
		},
		{
			name: "next attempt due",
			mod: func(s *daemon.Status) {
				s.Failing, s.FailingSince, s.Attempts, s.NextAttempt = provision.StepHub, since, 2, since.Add(time.Minute)
			},
			now:  since.Add(2 * time.Minute),
			want: []string{"next attempt  now\n"},
		},
		{
			name:    "broken config on disk",
			mod:     func(*daemon.Status) {},
			cfgErr:  "/etc/porthole/agent.yaml:3: syntax error: found a tab",
			want:    []string{"config        /etc/porthole/agent.yaml\nconfig error  /etc/porthole/agent.yaml:3: syntax error: found a tab — the agent runs with the config it loaded before\n"},
			notWant: []string{"failing"},
		},
		{
			name: "waiting",
			mod: func(s *daemon.Status) {
				s.Phase, s.NextAttempt = provision.PhaseWaiting, since.Add(40*time.Second)
			},
			now:  since,
			want: []string{"next attempt  in 40s (2025-03-01T13:02:51Z)\n"},
		},
		{
			name:    "hint alone",
			mod:     func(s *daemon.Status) { s.Hint = "check the system clock" },
			want:    []string{"hint          check the system clock\n"},
			notWant: []string{"failing"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.mod(s)
			var out bytes.Buffer
			printStatus(&out, s, tc.now, tc.cfgErr)
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("status lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out.String(), w) {
					t.Errorf("status has %q:\n%s", w, out.String())
				}
			}
		})
	}
}
