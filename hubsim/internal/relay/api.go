package relay

import (
	"errors"
	"time"
)

// StreamSpec names a stream the hub is about to offer to a device.
type StreamSpec struct {
	Hub string // the hub's host name
	// HubName is the hub's resource name (the IOTHUBS/<name> of its
	// resource id); empty means the first label of Hub.
	HubName  string
	DeviceID string
	ModuleID string // empty for a device stream
	Name     string // stream name from the service request
	// Policy is the shared access policy (the token's skn) of the service
	// request, written into every DeviceStreams record of the stream so
	// that the service side can say which credential opened which stream.
	Policy string
	// HandshakeTimeout bounds how long the relay waits for both sides to
	// connect; zero means the relay's configured default (60 s).
	HandshakeTimeout time.Duration
}

// Ticket is what the hub hands to both sides of a new stream.
type Ticket struct {
	ID string
	// URL is the streaming endpoint URL: wss://<host>:<port>/bridges/…, always
	// with an explicit port and no query string (PROTOCOL.md §15).
	URL string
	// DeviceToken and ServiceToken are single-use Bearer tokens bound to this
	// stream and side; only unreserved characters [A-Za-z0-9-._~].
	DeviceToken  string
	ServiceToken string
}

var (
	// ErrThrottled means a documented stream limit (new streams per second or
	// concurrent streams per hub) is exceeded; the hub answers 429.
	ErrThrottled = errors.New("relay: stream limit exceeded")
	// ErrClosed means the relay is shut down.
	ErrClosed = errors.New("relay: closed")
)
