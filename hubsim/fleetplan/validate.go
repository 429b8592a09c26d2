package fleetplan

import (
	"fmt"
	"strings"
	"time"
)

// Figures are what the planner and the socket-level fleet storm
// (sdk/internal/fleetbench TestFleetStorm) both measure of one storm:
// the time from the start until the last device was assigned, and the
// most registrations DPS admitted in any quota window.
type Figures struct {
	Converge      time.Duration
	PeakPerWindow int
}

// Tolerance is how far apart the planner's and the socket-level figures
// may be, as a fraction of the socket-level one.
const Tolerance = 0.10

// Comparison is the planner against the socket-level run.
type Comparison struct {
	Planner, Socket Figures
	// ConvergeDiff and PeakDiff are (planner − socket) / socket.
	ConvergeDiff, PeakDiff float64
}

// Compare sets the planner's figures against the socket-level run's and
// returns an error naming every figure more than tol apart.
func Compare(planner, socket Figures, tol float64) (Comparison, error) {
	c := Comparison{Planner: planner, Socket: socket}
	if socket.Converge <= 0 || socket.PeakPerWindow <= 0 {
		return c, fmt.Errorf("fleetplan: the socket-level run measured nothing (converge %v, peak %d)", socket.Converge, socket.PeakPerWindow)
	}
	c.ConvergeDiff = float64(planner.Converge-socket.Converge) / float64(socket.Converge)
	c.PeakDiff = float64(planner.PeakPerWindow-socket.PeakPerWindow) / float64(socket.PeakPerWindow)
	var bad []string
	if planner.Converge < 0 {
		bad = append(bad, "the planner's fleet never converged")
	} else if abs(c.ConvergeDiff) > tol {
		bad = append(bad, fmt.Sprintf("time to converge %v vs %v (%+.1f%%)", planner.Converge.Round(time.Second), socket.Converge.Round(time.Second), 100*c.ConvergeDiff))
	}
	if abs(c.PeakDiff) > tol {
		bad = append(bad, fmt.Sprintf("peak per window %d vs %d (%+.1f%%)", planner.PeakPerWindow, socket.PeakPerWindow, 100*c.PeakDiff))
	}
	if len(bad) > 0 {
		return c, fmt.Errorf("fleetplan: planner and socket-level run differ by more than %.0f%%: %s", 100*tol, strings.Join(bad, "; "))
	}
	return c, nil
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// String is the comparison as a small table.
func (c Comparison) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-32s %14s %14s %8s\n", "validation (same storm)", "planner", "socket-level", "diff")
	fmt.Fprintf(&b, "%-32s %14s %14s %+7.1f%%\n", "time to converge (all assigned)", c.Planner.Converge.Round(100*time.Millisecond), c.Socket.Converge.Round(100*time.Millisecond), 100*c.ConvergeDiff)
	fmt.Fprintf(&b, "%-32s %14d %14d %+7.1f%%\n", "peak admitted per quota window", c.Planner.PeakPerWindow, c.Socket.PeakPerWindow, 100*c.PeakDiff)
	return b.String()
}

// StormScenario is the socket-level fleet storm as a planner scenario: n
// devices without a cached assignment register at once, mqttPercent of
// them over MQTT, against quota registrations per minute.
func StormScenario(n, quota, mqttPercent int, seed uint64) Scenario {
	return Scenario{Name: "storm", Event: EventBoot, NoCache: true, Devices: n, Seed: seed,
		Quota: Quota{PerMinute: quota}, MQTTPercent: &mqttPercent}
}

// StormFigures runs the storm scenario and returns the figures the
// socket-level benchmark reports.
func (r *Result) StormFigures() Figures {
	return Figures{Converge: r.Assigned100, PeakPerWindow: r.PeakPerMinute}
}
