package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/bridge"
	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/agent/internal/provision"
)

// dialFunc opens a TCP connection.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// hubConn is what the daemon uses of a connected hub client (sdk/iothub's
// Client, adapted in wire.go).
type hubConn interface {
	Done() <-chan struct{}
	Err() error
	Close()
	UpdateReported(ctx context.Context, patch any) error
	// OnMethod adds (or replaces) a direct method handler.
	OnMethod(name string, h methodHandler)
}

// methodHandler answers a direct method: status and JSON-encodable body.
type methodHandler func(ctx context.Context, payload json.RawMessage) (int, any)

// hubHooks are installed on every hub connection.
type hubHooks struct {
	Methods map[string]methodHandler
	Stream  func(ctx context.Context, req bridge.Request)
	// State is told about connection drops and recoveries of a client
	// that reconnects by itself.
	State func(connected bool, err error)
	// Retrying, if non-nil, is told before each reconnect wait of such a
	// client: the failure and the wait. It must not block.
	Retrying func(err error, wait time.Duration)
}

// backend makes the cloud-side clients; wire.go has the real one, tests
// plug fakes in through Options.
type backend interface {
	// NewDPS returns the DPS client for cfg and the registration ID it
	// uses (taken from the certificate when the config leaves it empty).
	NewDPS(cfg *config.Config, dial dialFunc, log *slog.Logger) (provision.DPS, string, error)
	// DialHub connects to the assigned hub and installs hooks.
	DialHub(ctx context.Context, cfg *config.Config, a provision.Assignment, dial dialFunc, hooks hubHooks, log *slog.Logger) (hubConn, error)
}

// session adapts a hubConn to provision.Session.
type session struct{ hubConn }

func (s session) Close() { s.hubConn.Close() }
