package mux

import (
	"encoding/binary"
	"net"
	"sync"

	"github.com/porthole-iot/porthole/sdk/stream"
)

// yamux header layout (hashicorp/yamux spec.md): version, type, flags (2),
// stream id (4), length (4). Type 0 is a data frame whose length is the
// size of the body that follows.
const (
	yamuxHeaderSize = 12
	yamuxTypeData   = 0
)

// joiner sits between yamux and the device stream. yamux's send loop writes
// a data frame's 12-byte header and its body with two Writes, which on a
// device stream would become two WebSocket frames (two TLS records, two
// system calls, a 12-byte frame for every data frame). joiner holds back
// such a header and sends it together with the start of the body as one
// frame; a body longer than that follows in full frames straight from
// yamux's buffer. yamux has a single sender, so Write is never called
// concurrently.
//
// It also remembers the first read error, which is why the session ended
// (a peer's close frame with its reason, a keepalive timeout).
type joiner struct {
	net.Conn

	buf     []byte // owned by the writer (yamux's send loop)
	pending bool   // buf holds a data header waiting for its body

	mu      sync.Mutex
	readErr error // guarded by mu
}

func newJoiner(c net.Conn) *joiner { return &joiner{Conn: c} }

func (j *joiner) Write(p []byte) (int, error) {
	if j.pending {
		// The header goes out with as much of the body as fits one
		// frame; the rest follows in frames of its own, so only one
		// frame's worth is copied here whatever the body's size.
		j.pending = false
		first := min(len(p), stream.MaxFramePayload-yamuxHeaderSize)
		j.buf = append(j.buf[:yamuxHeaderSize], p[:first]...)
		n, err := j.Conn.Write(j.buf)
		n = max(n-yamuxHeaderSize, 0)
		if err != nil || first == len(p) {
			return n, err
		}
		m, err := j.Conn.Write(p[first:])
		return n + m, err
	}
	if len(p) == yamuxHeaderSize && p[1] == yamuxTypeData && binary.BigEndian.Uint32(p[8:]) > 0 {
		j.buf = append(j.buf[:0], p...)
		j.pending = true
		return len(p), nil
	}
	return j.Conn.Write(p)
}

func (j *joiner) Read(p []byte) (int, error) {
	n, err := j.Conn.Read(p)
	if err != nil {
		j.mu.Lock()
		if j.readErr == nil {
			j.readErr = err
		}
		j.mu.Unlock()
	}
	return n, err
}

// err is the first read error, nil while reading works.
func (j *joiner) err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.readErr
}
