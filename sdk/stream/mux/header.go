package mux

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrBadHeader is wrapped by every error about a malformed open header or
// reply.
var ErrBadHeader = errors.New("mux: malformed header")

// Request is an open request: the header an operator writes at the start of
// a yamux stream.
//
//	byte 0   version (1)
//	byte 1   kind (1 target, 2 dial, 3 control)
//	byte 2-3 length of name, big endian, at most MaxNameLen
//	...      name: a target name, or host:port for a dial
type Request struct {
	Kind Kind
	Name string
}

// MarshalBinary encodes r.
func (r Request) MarshalBinary() ([]byte, error) {
	if len(r.Name) > MaxNameLen {
		return nil, fmt.Errorf("%w: name of %d bytes (at most %d)", ErrBadHeader, len(r.Name), MaxNameLen)
	}
	switch r.Kind {
	case KindTarget, KindDial, KindControl:
	default:
		return nil, fmt.Errorf("%w: kind %d", ErrBadHeader, r.Kind)
	}
	b := make([]byte, 4, 4+len(r.Name))
	b[0] = Version
	b[1] = byte(r.Kind)
	binary.BigEndian.PutUint16(b[2:], uint16(len(r.Name)))
	return append(b, r.Name...), nil
}

// ReadRequest reads one open request from r.
func ReadRequest(r io.Reader) (Request, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Request{}, fmt.Errorf("mux: read open request: %w", err)
	}
	if h[0] != Version {
		return Request{}, fmt.Errorf("%w: version %d (want %d)", ErrBadHeader, h[0], Version)
	}
	k := Kind(h[1])
	switch k {
	case KindTarget, KindDial, KindControl:
	default:
		return Request{}, fmt.Errorf("%w: kind %d", ErrBadHeader, h[1])
	}
	n := int(binary.BigEndian.Uint16(h[2:]))
	if n > MaxNameLen {
		return Request{}, fmt.Errorf("%w: name of %d bytes (at most %d)", ErrBadHeader, n, MaxNameLen)
	}
	name := make([]byte, n)
	if _, err := io.ReadFull(r, name); err != nil {
		return Request{}, fmt.Errorf("mux: read open request: %w", err)
	}
	return Request{Kind: k, Name: string(name)}, nil
}

// Reply answers an open request.
//
//	byte 0   version (1)
//	byte 1   code (0 ok, else a SOCKS5 reply code)
//	byte 2-5 connection id the device assigned, big endian
//	byte 6-7 length of message, big endian, at most MaxMessageLen
//	...      message: why a request was refused, or for the control
//	         stream the device's limits; UTF-8
type Reply struct {
	Code    Code
	ID      uint32
	Message string
}

// MarshalBinary encodes r; a message longer than MaxMessageLen is cut.
func (r Reply) MarshalBinary() ([]byte, error) {
	msg := r.Message
	if len(msg) > MaxMessageLen {
		msg = msg[:MaxMessageLen]
	}
	b := make([]byte, 8, 8+len(msg))
	b[0] = Version
	b[1] = byte(r.Code)
	binary.BigEndian.PutUint32(b[2:], r.ID)
	binary.BigEndian.PutUint16(b[6:], uint16(len(msg)))
	return append(b, msg...), nil
}

// ReadReply reads one open reply from r.
func ReadReply(r io.Reader) (Reply, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Reply{}, fmt.Errorf("mux: read open reply: %w", err)
	}
	if h[0] != Version {
		return Reply{}, fmt.Errorf("%w: reply version %d (want %d)", ErrBadHeader, h[0], Version)
	}
	n := int(binary.BigEndian.Uint16(h[6:]))
	if n > MaxMessageLen {
		return Reply{}, fmt.Errorf("%w: message of %d bytes (at most %d)", ErrBadHeader, n, MaxMessageLen)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return Reply{}, fmt.Errorf("mux: read open reply: %w", err)
	}
	return Reply{Code: Code(h[1]), ID: binary.BigEndian.Uint32(h[2:]), Message: string(msg)}, nil
}

// Notice is one line on the control stream. From the device: it closed
// connection ID for Reason (a reload removed its target, the target
// failed, the agent is shutting down). From the operator: its end of
// connection ID failed for Reason, and the device is to close its end.
type Notice struct {
	ID     uint32 `json:"id"`
	Reason string `json:"reason"`
}
