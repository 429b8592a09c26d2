package daemon

import (
	"context"
	"log/slog"
	"time"
)

// sdkRetryMessages are the lines the SDK clients log on every attempt of a
// retry or reconnect loop. The daemon and the provisioning flow log the
// state changes themselves (one line when a step starts failing, one when
// it recovers), so in the agent's log these go to debug level. The texts
// are sdk/dps's and sdk/iothub's; TestOutageHubLost catches a rename of
// sdk/iothub's. (The daemon's DPS calls make one attempt each, so sdk/dps's
// line only shows if that changes.)
var sdkRetryMessages = map[string]bool{
	"dps: retrying":    true, // sdk/dps Client.call
	"disconnected":     true, // sdk/iothub Client.run; the daemon logs "hub connection lost"
	"reconnecting":     true, // sdk/iothub Client.reconnect, before every wait
	"reconnect failed": true, // sdk/iothub Client.reconnect, after every failed attempt
	"reconnected":      true, // sdk/iothub Client.run; the daemon logs "hub connection restored"
}

// reconnectWatch is told about sdk/iothub's reconnect loop, which reports
// it only through its log: each failed attempt ("reconnect failed") and
// each wait before the next one ("reconnecting", with its "wait"). The
// daemon shows them in the status and paces its own log lines with them.
type reconnectWatch struct {
	failed func()
	wait   func(time.Duration)
}

// sdkLogger is l for the SDK clients: the same destination and level, with
// their per-attempt lines demoted to debug; w (may be nil) watches the hub
// client's reconnects.
func sdkLogger(l *slog.Logger, w *reconnectWatch) *slog.Logger {
	if l == nil {
		return nil
	}
	return slog.New(demoted{h: l.Handler(), msgs: sdkRetryMessages, watch: w})
}

// demoted is a slog.Handler that logs the records whose message is in msgs
// at debug level.
type demoted struct {
	h     slog.Handler
	msgs  map[string]bool
	watch *reconnectWatch
}

func (d demoted) Enabled(ctx context.Context, l slog.Level) bool {
	// The watch needs the reconnect records at every level.
	return d.watch != nil || d.h.Enabled(ctx, l)
}

func (d demoted) Handle(ctx context.Context, r slog.Record) error {
	if d.watch != nil {
		switch r.Message {
		case "reconnect failed":
			d.watch.failed()
		case "reconnecting":
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "wait" && a.Value.Kind() == slog.KindDuration {
					d.watch.wait(a.Value.Duration())
				}
				return true
			})
		}
	}
	if r.Level > slog.LevelDebug && d.msgs[r.Message] {
		r.Level = slog.LevelDebug
	}
	if !d.h.Enabled(ctx, r.Level) {
		return nil
	}
	return d.h.Handle(ctx, r)
}

func (d demoted) WithAttrs(as []slog.Attr) slog.Handler {
	return demoted{h: d.h.WithAttrs(as), msgs: d.msgs, watch: d.watch}
}

func (d demoted) WithGroup(name string) slog.Handler {
	return demoted{h: d.h.WithGroup(name), msgs: d.msgs, watch: d.watch}
}
