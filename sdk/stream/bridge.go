package stream

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
)

// Bridge copies bytes both ways between a and b until either direction ends
// (EOF or error) or ctx is cancelled, then closes both connections and
// returns once both directions have stopped. It starts one goroutine and
// waits for it, so nothing outlives the call.
//
// When ctx was cancelled with a *CloseError as its cause
// (context.WithCancelCause), the *Conn sides are closed with that status
// and reason, so that the far end learns why (a device agent shutting down
// sends CloseGoingAway).
//
// aToB and bToA count the bytes written to b and to a. err is nil when the
// first direction to finish ended with EOF, ctx.Err() when ctx ended the
// bridge, and otherwise the first direction's error. Errors the second
// direction sees because Bridge closed its connections are not reported.
//
// Copying avoids per-frame allocations: a *Conn on the writing side reads
// the other connection straight into its WebSocket write buffer
// (Conn.ReadFrom), other pairs use pooled 64 KiB buffers.
func Bridge(ctx context.Context, a, b net.Conn) (aToB, bToA int64, err error) {
	var closeOnce sync.Once
	closeBoth := func() {
		closeOnce.Do(func() {
			a.Close()
			b.Close()
		})
	}
	stop := context.AfterFunc(ctx, func() {
		var ce *CloseError
		if !errors.As(context.Cause(ctx), &ce) {
			closeBoth()
			return
		}
		closeOnce.Do(func() {
			closeWith(a, ce)
			closeWith(b, ce)
		})
	})

	var (
		mu       sync.Mutex
		first    error
		finished bool
	)
	done := func(e error) {
		mu.Lock()
		if !finished {
			finished = true
			first = e
		}
		mu.Unlock()
		closeBoth()
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by Bridge: it waits below
		defer wg.Done()
		n, e := pump(a, b)
		bToA = n
		done(e)
	}()
	n, e := pump(b, a)
	aToB = n
	done(e)
	wg.Wait()

	if !stop() && ctx.Err() != nil {
		// The AfterFunc ran: ctx ended the bridge (or raced with its end).
		if first == nil || errors.Is(first, net.ErrClosed) {
			return aToB, bToA, ctx.Err()
		}
	}
	return aToB, bToA, first
}

// pump copies src to dst, ending on EOF (nil error) or the first error.
func pump(dst, src net.Conn) (int64, error) {
	if d, ok := dst.(*Conn); ok {
		return d.ReadFrom(src)
	}
	if s, ok := src.(*Conn); ok {
		return s.WriteTo(dst)
	}
	bp := copyPool.Get().(*[]byte)
	defer copyPool.Put(bp)
	n, err := copyLoop(dst, src, *bp)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// closeWith closes c, with ce's status and reason when c is a *Conn.
func closeWith(c net.Conn, ce *CloseError) {
	if sc, ok := c.(*Conn); ok {
		sc.CloseWith(ce.Code, ce.Reason)
		return
	}
	c.Close()
}
