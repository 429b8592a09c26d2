package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// A Personality serves the MQTT connections whose CONNECT username it claims.
// hubsim has two: the IoT Hub personality (username "<host>/<clientId>/?api-version=…")
// and the DPS personality (username "<idScope>/registrations/<regId>/api-version=…").
// The broker asks each registered personality in order; the first that claims a
// username serves the connection. A CONNECT no personality claims is refused with
// "bad username or password".
type Personality interface {
	// Claims reports whether this personality serves a CONNECT with this username.
	Claims(username string) bool
	// Connect authenticates the client. On success it returns the Session that
	// receives everything the client does. On failure it returns an error; wrap one
	// of ErrBadCredentials, ErrNotAuthorized or ErrServerUnavailable so the broker
	// can answer with the matching CONNACK return code (MQTT 3.1.1 §3.2.2.3).
	// out is the only way to send to this client; it stays valid until
	// Session.Disconnected is called.
	Connect(info ConnectInfo, out Outbound) (Session, error)
}

// ConnectInfo is what the client presented on CONNECT.
type ConnectInfo struct {
	ClientID string
	Username string
	Password []byte
	// CleanSession is the CONNECT flag. When it is false and the broker holds
	// a session for this client, the broker answers session present 1 and
	// calls the new Session's Subscribe for every stored filter right after
	// Connect returns (see the package doc, "Persistent sessions").
	CleanSession bool
	Keepalive    uint16
	// TLS is the connection's TLS state (peer certificates for X.509 auth,
	// ServerName for SNI); nil when the transport carries no TLS.
	TLS *tls.ConnectionState
	// Remote is the client's remote address as text.
	Remote string
	// Transport is "mqtt" (MQTT over TLS) or "mqtt-ws" (MQTT over WebSocket).
	Transport string
	// LocalAddr is the address the client connected to (host:port); used to tell
	// several hubs on several loopback addresses apart.
	LocalAddr string
}

// Outbound sends to one connected client.
type Outbound interface {
	// Publish sends a message to this client only (never to other subscribers).
	// It returns ErrNotSubscribed when the client holds no subscription matching
	// topic, and ErrClosed once the client is gone. qos is capped at the granted
	// subscription QoS as MQTT requires.
	Publish(topic string, payload []byte, qos byte) error
	// Subscribed reports whether the client holds a subscription matching topic.
	Subscribed(topic string) bool
	// Close disconnects the client. It is idempotent.
	Close()
}

// Session receives what one authenticated client does. The broker calls its
// methods from the client's read goroutine, one call at a time, in order.
type Session interface {
	// Subscribe is asked for every topic filter in a SUBSCRIBE, and for every
	// stored filter of a resumed session before its CONNACK. It returns the
	// granted QoS, or ok=false to refuse (SUBACK 0x80; a refused stored
	// filter is dropped).
	Subscribe(filter string, qos byte) (granted byte, ok bool)
	// Unsubscribe is told about every filter in an UNSUBSCRIBE.
	Unsubscribe(filter string)
	// Publish receives a client PUBLISH. An error refuses it: the broker logs it
	// and, as IoT Hub does for a publish to a topic the device may not use,
	// disconnects the client when the error wraps ErrNotAuthorized.
	Publish(topic string, payload []byte, qos byte) error
	// Disconnected is called once when the client is gone; err is nil on a
	// clean DISCONNECT.
	Disconnected(err error)
}

var (
	// ErrBadCredentials → CONNACK 0x04 (bad user name or password).
	ErrBadCredentials = errors.New("broker: bad user name or password")
	// ErrNotAuthorized → CONNACK 0x05 (not authorized).
	ErrNotAuthorized = errors.New("broker: not authorized")
	// ErrServerUnavailable → CONNACK 0x03 (server unavailable).
	ErrServerUnavailable = errors.New("broker: server unavailable")
	// ErrNotSubscribed is returned by Outbound.Publish when the client has no
	// matching subscription.
	ErrNotSubscribed = errors.New("broker: client not subscribed to topic")
	// ErrClosed is returned by Outbound.Publish after the client disconnected.
	ErrClosed = errors.New("broker: client closed")
)

// RefusedError refuses a CONNECT with a chosen CONNACK return code (MQTT
// 3.1.1 §3.2.2.3: 1 unacceptable protocol version, 2 identifier rejected,
// 3 server unavailable, 4 bad user name or password, 5 not authorized);
// fault injection uses it. Other codes answer 3.
type RefusedError struct {
	Code   byte
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("broker: connection refused with CONNACK %d: %s", e.Code, e.Reason)
}
