package mux

import (
	"encoding/binary"
	"net"
	"sync"
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
// such a header and sends it together with the body as one frame. yamux
// has a single sender, so Write is never called concurrently.
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
		j.pending = false
		j.buf = append(j.buf[:yamuxHeaderSize], p...)
		n, err := j.Conn.Write(j.buf)
		n -= yamuxHeaderSize
		if n < 0 {
			n = 0
		}
		return n, err
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
