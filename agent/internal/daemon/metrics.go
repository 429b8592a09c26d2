package daemon

import (
	"bytes"
	"context"
	"path/filepath"
	"runtime"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/metrics"
	"github.com/porthole-iot/porthole/agent/internal/state"
	"github.com/porthole-iot/porthole/sdk/retry"
)

// MetricsSnapshot turns a status into the metrics' snapshot, as seen at
// now (st nil: the agent is not running).
func MetricsSnapshot(st *Status, version string, now time.Time) metrics.Snapshot {
	if st == nil {
		return metrics.Snapshot{Version: version, GoVersion: runtime.Version(), Now: now}
	}
	return metrics.Snapshot{
		Up:              true,
		Version:         st.Version,
		GoVersion:       runtime.Version(),
		Started:         st.Started,
		Now:             now,
		Connected:       st.Connected,
		Phase:           string(st.Phase),
		Failing:         string(st.Failing),
		HubReconnects:   st.HubReconnects,
		Registrations:   uint64(st.Registrations),
		StreamsOpen:     st.Streams.Open,
		StreamsAccepted: st.Streams.Accepted,
		StreamsRejected: st.Streams.Rejected,
		BytesToTarget:   st.Streams.BytesToTarget,
		BytesFromTarget: st.Streams.BytesFromTarget,
	}
}

// textfileWriter keeps dir/porthole_agent.prom current for node_exporter's
// textfile collector: every interval, and once more at stop with
// porthole_agent_up 0 (a stale file then says the agent is down, rather
// than repeating its last values). Each write is crash-safe (state.WriteFile):
// a scrape never reads half a file. Its run goroutine is owned by Run.
type textfileWriter struct {
	path     string
	interval time.Duration
	clock    retry.Clock
	snapshot func(up bool) metrics.Snapshot
	logErr   func(err error) // told about the first failure of a streak
	done     chan struct{}
}

func (w *textfileWriter) write(up bool) error {
	var b bytes.Buffer
	if err := metrics.Write(&b, w.snapshot(up)); err != nil {
		return err
	}
	// 0644: node_exporter usually runs as another user.
	return state.WriteFile(w.path, b.Bytes(), 0o644)
}

func (w *textfileWriter) run(ctx context.Context) {
	defer close(w.done)
	failing := false
	for {
		err := w.write(true)
		if err != nil && !failing {
			w.logErr(err)
		}
		failing = err != nil
		t := w.clock.NewTimer(w.interval)
		select {
		case <-ctx.Done():
			t.Stop()
			if err := w.write(false); err != nil && !failing {
				w.logErr(err)
			}
			return
		case <-t.C():
		}
	}
}

// textfilePath is where the metrics file goes in dir.
func textfilePath(dir string) string { return filepath.Join(dir, metrics.FileName) }

func (d *daemon) newTextfileWriter(dir string, interval time.Duration) *textfileWriter {
	clock := d.opts.Clock
	if clock == nil {
		clock = retry.RealClock()
	}
	path := textfilePath(dir)
	return &textfileWriter{
		path: path, interval: interval, clock: clock, done: make(chan struct{}),
		snapshot: func(up bool) metrics.Snapshot {
			if !up {
				return MetricsSnapshot(nil, d.opts.Version, d.now())
			}
			st := d.status()
			return MetricsSnapshot(&st, d.opts.Version, d.now())
		},
		logErr: func(err error) { d.log.Warn("could not write the metrics file; retrying", "path", path, "err", err) },
	}
}
