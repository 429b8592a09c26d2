package mux

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/porthole-iot/porthole/sdk/stream"
)

// Counter counts bytes; it is safe for concurrent use.
type Counter struct{ n atomic.Int64 }

// Load returns the count.
func (c *Counter) Load() int64 {
	if c == nil {
		return 0
	}
	return c.n.Load()
}

func (c *Counter) add(n int) {
	if c != nil && n > 0 {
		c.n.Add(int64(n))
	}
}

// Ends says which side of a Join ended first.
type Ends int

const (
	EndNone   Ends = iota // ctx ended the join, or an error
	EndFirst              // the first connection (a) sent its end first
	EndSecond             // the second connection (b) sent its end first
)

// Join copies a to b and b to a with half-close: when one side's reads end
// with EOF, Join closes the other side for writing (yamux sends its FIN;
// a TCP connection gets CloseWrite) and keeps copying the other way. It
// returns when both directions have ended, on the first error, or when ctx
// ends; then both connections are closed. It starts one goroutine and waits
// for it.
//
// aToB and bToA count the bytes as they move (for live status). first
// says which side ended first; err is the first error other than EOF, or
// ctx's cause when ctx ended the join.
func Join(ctx context.Context, a, b net.Conn, aToB, bToA *Counter) (first Ends, err error) {
	var closeOnce sync.Once
	closeBoth := func() {
		closeOnce.Do(func() {
			a.Close()
			b.Close()
		})
	}
	// abort also ends reads at once: a yamux stream's Close is only a
	// half-close, whose reads wait for the peer's FIN. A *Conn (the
	// operator's end) also has the device reset its end, which would
	// otherwise keep sending (or keep its target sending) into a window
	// nobody reads until CloseTimeout.
	abort := func(cause error) {
		now := time.Now()
		_ = a.SetDeadline(now)
		_ = b.SetDeadline(now)
		for _, c := range []net.Conn{a, b} {
			if r, ok := c.(resetter); ok {
				r.reset(cause.Error())
			}
		}
		closeBoth()
	}
	stop := context.AfterFunc(ctx, func() { abort(context.Cause(ctx)) })
	defer stop()

	var (
		mu       sync.Mutex
		firstErr error
		ends     Ends
	)
	// eof notes which side sent its end first; it runs before the other
	// side is closed for writing, so the answer cannot be overtaken by the
	// reaction it causes.
	eof := func(who Ends) func() {
		return func() {
			mu.Lock()
			if ends == EndNone {
				ends = who
			}
			mu.Unlock()
		}
	}
	finish := func(e error) {
		if e == nil {
			return
		}
		mu.Lock()
		if firstErr == nil {
			firstErr = e
		}
		e = firstErr
		mu.Unlock()
		abort(e)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by Join: it waits below
		defer wg.Done()
		finish(halfCopy(a, b, bToA, eof(EndSecond)))
	}()
	finish(halfCopy(b, a, aToB, eof(EndFirst)))
	wg.Wait()
	closeBoth()
	if ctx.Err() != nil {
		return EndNone, context.Cause(ctx)
	}
	if firstErr != nil && !errors.Is(firstErr, net.ErrClosed) {
		return ends, firstErr
	}
	return ends, nil
}

// resetter is a connection whose far end can be told that this end failed
// (*Conn).
type resetter interface{ reset(reason string) }

// Copy buffers: an idle connection blocks in Read on a small buffer of its
// own, so 100 idle connections cost 2 × 100 × smallBuf; a read that fills
// it switches to a pooled large buffer until reads come back short. The
// large buffer holds four WebSocket frames' payload less a yamux header:
// a full read becomes one yamux data frame sent as four full WebSocket
// frames (the joiner puts the header in the first). Each yamux frame
// costs two goroutine handoffs at the sender (the writer to yamux's send
// loop and back) and a wake-up of the reader at the receiver; between
// processes each handoff is a thread wake-up, so frames four times the
// size of a WebSocket frame cut that cost by four (BenchmarkBulk and the
// end-to-end bench, make bench).
const (
	smallBuf = 2 << 10
	largeBuf = 4*stream.MaxFramePayload - yamuxHeaderSize
)

var largePool = sync.Pool{New: func() any { b := make([]byte, largeBuf); return &b }}

// halfCopy copies src to dst; at src's EOF it calls onEOF, then closes dst
// for writing.
func halfCopy(dst, src net.Conn, n *Counter, onEOF func()) error {
	small := make([]byte, smallBuf)
	var large *[]byte
	defer func() {
		if large != nil {
			largePool.Put(large)
		}
	}()
	for {
		buf := small
		if large != nil {
			buf = *large
		}
		k, rerr := src.Read(buf)
		if k > 0 {
			w, werr := dst.Write(buf[:k])
			n.add(w)
			if werr != nil {
				return werr
			}
		}
		switch {
		case large == nil && k == len(small):
			large = largePool.Get().(*[]byte)
		case large != nil && k < len(small):
			largePool.Put(large)
			large = nil
		}
		if rerr == io.EOF {
			onEOF()
			return closeWrite(dst)
		}
		if rerr != nil {
			return rerr
		}
	}
}

// closeWrite ends dst's write side: CloseWrite where the connection has one
// (TCP, Unix), Close for a yamux stream (whose Close is a half-close: it
// sends FIN and keeps reading until the peer's FIN).
func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}
