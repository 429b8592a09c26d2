package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/retry/retrytest"
)

// TestHubReconnectLogPacing: while the hub client reconnects by itself
// for hours (one attempt every 5 minutes, the backoff ceiling), the log
// says at once that the agent retries and when, then reminds at doubling
// intervals (1, 2, 4 … minutes, at most hourly), not once per attempt;
// each line says when the next attempt is.
func TestHubReconnectLogPacing(t *testing.T) {
	clock := retrytest.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	var buf bytes.Buffer
	d := &daemon{opts: Options{Clock: clock}, log: slog.New(slog.NewJSONHandler(&buf, nil))}
	lost := errors.New("iothub: connection lost: EOF")

	// The client's first wait may be announced before the state change.
	d.hubRetrying(lost, 2*time.Second)
	d.hubState(false, lost)
	const wait = 5 * time.Minute
	attempts := 0
	for clock.Now().Before(time.Date(2025, 1, 1, 6, 0, 0, 0, time.UTC)) {
		clock.Advance(wait)
		attempts++
		d.hubRetrying(errors.New("connection refused"), wait)
	}
	d.mu.Lock()
	fails, next := d.hubWaits-1, d.hubNextAt
	d.mu.Unlock()
	if fails != attempts || !next.Equal(clock.Now().Add(wait)) {
		t.Errorf("%d attempts, next %v; want %d, %v (TestOutageHubLost checks the status shows them)", fails, next, attempts, clock.Now().Add(wait))
	}

	var lines []map[string]any
	for _, s := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		if m["level"] != "DEBUG" && m["msg"] != "hub connection lost; reconnecting" {
			lines = append(lines, m)
		}
	}
	if len(lines) == 0 || lines[0]["msg"] != "retrying the hub connection" || lines[0]["next_attempt"] != "2025-01-01T00:00:02Z" {
		t.Fatalf("first line %v, want the retry with the next attempt", lines)
	}
	// Reminders at 5 (first due after 1 min, at the next attempt), then
	// ≥2, ≥4, ≥8, ≥16, ≥32 min after the previous, then hourly.
	reminders := lines[1:]
	if len(reminders) < 7 || len(reminders) > 11 {
		t.Errorf("%d reminders in 6 h for %d attempts, want 7 to 11", len(reminders), attempts)
	}
	for _, r := range reminders {
		if r["msg"] != "hub still unreachable; retrying" || r["next_attempt"] == nil || r["failed_attempts"] == nil {
			t.Errorf("reminder %v", r)
		}
	}
}
