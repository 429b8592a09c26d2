package mux

import "strconv"

// Wire constants of porthole's multiplexed stream. They are porthole's own
// (no Azure SDK knows them): the stream name is what the service side asks
// the hub for, and the open header is what the operator writes at the start
// of every yamux stream. The yamux framing itself is hashicorp/yamux's
// (spec.md in github.com/hashicorp/yamux, protocol version 0).
const (
	// StreamName is the device-stream name an operator asks for to get a
	// multiplexed stream. The only thing a service can attach to a stream
	// request is its name (POST /twins/{id}/streams/{name}: no body, only
	// the two timeout headers; the device receives the name as the fourth
	// topic level of $iothub/streams/POST/<name>/...), so the name is the
	// negotiation. An agent without multiplexing, or with it disabled, has
	// no target of this name and rejects the request before any byte flows.
	// It contains only characters that are valid in a URL path segment and
	// an MQTT topic level.
	StreamName = "porthole-mux-v1"

	// Version is the open header's version byte.
	Version = 1

	// MaxNameLen bounds the name or address in an open header.
	MaxNameLen = 512
	// MaxMessageLen bounds the message in an open reply.
	MaxMessageLen = 512
)

// Kind says what an open request asks for.
type Kind byte

const (
	// KindTarget asks for one of the device's named targets ("ssh", "web").
	KindTarget Kind = 1
	// KindDial asks the device to dial host:port (a SOCKS CONNECT); the
	// device's allow-list decides.
	KindDial Kind = 2
	// KindControl opens the control stream: the first stream an operator
	// opens, on which the device sends close notices as JSON lines.
	KindControl Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindTarget:
		return "target"
	case KindDial:
		return "dial"
	case KindControl:
		return "control"
	}
	return "unknown"
}

// Code is the result of an open request. The values are the SOCKS5 reply
// codes (RFC 1928 §6), so a SOCKS front end passes them on unchanged.
type Code byte

const (
	CodeOK                 Code = 0x00 // succeeded
	CodeFailure            Code = 0x01 // general failure (also: too many connections)
	CodeNotAllowed         Code = 0x02 // connection not allowed by ruleset (unknown target, denied destination)
	CodeNetworkUnreachable Code = 0x03
	CodeHostUnreachable    Code = 0x04 // also: name does not resolve
	CodeRefused            Code = 0x05 // connection refused
	CodeTTLExpired         Code = 0x06 // also: dial timed out
	CodeCommandUnsupported Code = 0x07
	CodeAddressUnsupported Code = 0x08
)

func (c Code) String() string {
	switch c {
	case CodeOK:
		return "ok"
	case CodeFailure:
		return "failure"
	case CodeNotAllowed:
		return "not allowed"
	case CodeNetworkUnreachable:
		return "network unreachable"
	case CodeHostUnreachable:
		return "host unreachable"
	case CodeRefused:
		return "connection refused"
	case CodeTTLExpired:
		return "timed out"
	case CodeCommandUnsupported:
		return "command not supported"
	case CodeAddressUnsupported:
		return "address type not supported"
	}
	return "code " + strconv.Itoa(int(c))
}
