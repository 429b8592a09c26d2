package mux

import (
	"bytes"
	"encoding/binary"
	"net"
	"slices"
	"testing"

	"github.com/porthole-iot/porthole/sdk/stream"
)

// recordConn records each Write as one frame, as a device stream would
// send it.
type recordConn struct {
	net.Conn
	frames [][]byte
}

func (r *recordConn) Write(p []byte) (int, error) {
	// A device stream splits a long Write into frames of at most
	// MaxFramePayload bytes.
	for q := p; len(q) > 0; {
		n := min(len(q), stream.MaxFramePayload)
		r.frames = append(r.frames, bytes.Clone(q[:n]))
		q = q[n:]
	}
	return len(p), nil
}

func yamuxData(n int) []byte {
	h := make([]byte, yamuxHeaderSize)
	h[1] = yamuxTypeData
	binary.BigEndian.PutUint32(h[4:], 1)
	binary.BigEndian.PutUint32(h[8:], uint32(n))
	return h
}

// TestJoinerFrames checks that a data frame's header travels with the
// start of its body, that a body larger than one WebSocket frame follows
// in full frames, and that the joiner copies at most one frame's worth
// (its buffer never grows past MaxFramePayload).
func TestJoinerFrames(t *testing.T) {
	const max = stream.MaxFramePayload
	tests := []struct {
		name  string
		body  int
		sizes []int // payload sizes of the frames sent
	}{
		{"small", 100, []int{yamuxHeaderSize + 100}},
		{"exactly one frame", max - yamuxHeaderSize, []int{max}},
		{"one byte more", max - yamuxHeaderSize + 1, []int{max, 1}},
		{"four frames", 4*max - yamuxHeaderSize, []int{max, max, max, max}},
		{"1 MiB", 1 << 20, []int{max, max, max, max, max, max, max, max, max, max, max, max, max, max, max, max, yamuxHeaderSize}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &recordConn{}
			j := newJoiner(rc)
			hdr := yamuxData(tt.body)
			body := bytes.Repeat([]byte{0xa5, 0x5a, 0x33}, tt.body/3+1)[:tt.body]
			if n, err := j.Write(hdr); n != len(hdr) || err != nil {
				t.Fatalf("header: %d, %v", n, err)
			}
			if len(rc.frames) != 0 {
				t.Fatalf("header sent alone: %d frames", len(rc.frames))
			}
			if n, err := j.Write(body); n != len(body) || err != nil {
				t.Fatalf("body: %d, %v (want %d)", n, err, len(body))
			}
			var sizes []int
			for _, f := range rc.frames {
				sizes = append(sizes, len(f))
			}
			if !slices.Equal(sizes, tt.sizes) {
				t.Errorf("frame sizes %v, want %v", sizes, tt.sizes)
			}
			if got, want := bytes.Join(rc.frames, nil), append(hdr, body...); !bytes.Equal(got, want) {
				t.Error("bytes differ from header + body")
			}
			if cap(j.buf) > max {
				t.Errorf("joiner buffer grew to %d bytes (at most %d)", cap(j.buf), max)
			}
		})
	}
}

// TestConfigVerify checks the window bounds: yamux's minimum is accepted
// below the default, less is refused, zero means the default.
func TestConfigVerify(t *testing.T) {
	tests := []struct {
		name   string
		window uint32
		ok     bool
	}{
		{"default", 0, true},
		{"yamux minimum", MinWindow, true},
		{"below minimum", MinWindow - 1, false},
		{"large", 4 << 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Config{Window: tt.window}.Verify()
			if (err == nil) != tt.ok {
				t.Fatalf("Verify(window %d) = %v, want ok=%v", tt.window, err, tt.ok)
			}
			if _, err := (Config{Window: tt.window}).yamuxConfig(); (err == nil) != tt.ok {
				t.Fatalf("yamuxConfig(window %d) = %v, want ok=%v", tt.window, err, tt.ok)
			}
		})
	}
}
