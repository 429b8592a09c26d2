package mux

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/yamux"
)

// Config tunes a multiplexed stream. Both ends use the same shape; the
// zero value of a field means its default.
type Config struct {
	// MaxConns bounds the connections open at once inside one stream (the
	// device refuses more with CodeFailure) and the yamux accept backlog.
	// Default DefaultMaxConns.
	MaxConns int
	// Window is yamux's per-connection receive window: the most bytes a
	// connection may have in flight unacknowledged, and so the most one
	// slow reader can make the other end buffer. It caps one connection's
	// throughput at Window/RTT. Default DefaultWindow; at least
	// MinWindow (yamux's minimum).
	Window uint32
	// OpenTimeout bounds the open handshake of one connection (header,
	// the device's dial, reply). Default DefaultOpenTimeout.
	OpenTimeout time.Duration
	// CloseTimeout is how long a half-closed connection waits for the
	// other side's end before it is reset. Default DefaultCloseTimeout.
	CloseTimeout time.Duration
	// WriteTimeout is yamux's safety valve: a write to the stream that
	// makes no progress for this long ends the session. Default
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
}

// Defaults. Memory: each connection buffers at most Window bytes per
// direction, so a stream at MaxConns can hold up to MaxConns × Window
// (32 MiB at the defaults) only if every reader stalls; idle connections
// hold no buffers. The window is twice yamux's minimum: with 256 KiB the
// sender of a bulk transfer stops for a window update every 128 KiB, and
// each stop and restart wakes threads at both ends and in the relay; at
// 512 KiB the end-to-end bench's context switches per MiB at the ends fell
// from about 60 to about 33 and its CPU per GB from 1.5× a plain stream's
// to 1.2× (with Join's 256 KiB frames). Larger windows gained little
// more (1 MiB: the same; 4 MiB: about 1.2×) for 2-8× the worst case.
const (
	DefaultMaxConns     = 64
	DefaultWindow       = 512 << 10
	MinWindow           = 256 << 10 // yamux refuses less
	DefaultOpenTimeout  = 30 * time.Second
	DefaultCloseTimeout = 30 * time.Second
	DefaultWriteTimeout = 30 * time.Second
)

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.OpenTimeout <= 0 {
		c.OpenTimeout = DefaultOpenTimeout
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	return c
}

// Verify reports a config yamux would refuse.
func (c Config) Verify() error {
	c = c.withDefaults()
	if c.Window < MinWindow {
		return fmt.Errorf("mux: window %d is below yamux's minimum %d", c.Window, MinWindow)
	}
	return nil
}

// yamuxConfig turns c into yamux's config. yamux's own keepalive is off:
// the WebSocket ping/pong of the device stream (sdk/stream) checks the
// whole path, so a second timer inside would only add traffic. yamux logs
// nothing: every failure reaches the caller as an error.
func (c Config) yamuxConfig() (*yamux.Config, error) {
	c = c.withDefaults()
	y := yamux.DefaultConfig()
	y.AcceptBacklog = c.MaxConns
	y.EnableKeepAlive = false
	y.MaxStreamWindowSize = c.Window
	y.StreamOpenTimeout = c.OpenTimeout
	y.StreamCloseTimeout = c.CloseTimeout
	y.ConnectionWriteTimeout = c.WriteTimeout
	y.LogOutput = io.Discard
	if err := yamux.VerifyConfig(y); err != nil {
		return nil, errors.Join(fmt.Errorf("mux: config"), err)
	}
	return y, nil
}
