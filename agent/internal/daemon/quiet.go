package daemon

import (
	"context"
	"log/slog"
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

// sdkLogger is l for the SDK clients: the same destination and level, with
// their per-attempt lines demoted to debug.
func sdkLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return nil
	}
	return slog.New(demoted{h: l.Handler(), msgs: sdkRetryMessages})
}

// demoted is a slog.Handler that logs the records whose message is in msgs
// at debug level.
type demoted struct {
	h    slog.Handler
	msgs map[string]bool
}

func (d demoted) Enabled(ctx context.Context, l slog.Level) bool { return d.h.Enabled(ctx, l) }

func (d demoted) Handle(ctx context.Context, r slog.Record) error {
	if r.Level > slog.LevelDebug && d.msgs[r.Message] {
		if !d.h.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return d.h.Handle(ctx, r)
}

func (d demoted) WithAttrs(as []slog.Attr) slog.Handler {
	return demoted{h: d.h.WithAttrs(as), msgs: d.msgs}
}

func (d demoted) WithGroup(name string) slog.Handler {
	return demoted{h: d.h.WithGroup(name), msgs: d.msgs}
}
