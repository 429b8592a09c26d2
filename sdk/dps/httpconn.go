package dps

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// httpConns sends the client's HTTPS requests over HTTP/1.1 connections it
// dials itself (through the proxy tunnel when Config.ProxyURL is set) and
// keeps at most one idle connection between the requests of a call
// sequence (register, then the polls). It replaces net/http's Client and
// Transport: DPS needs one request at a time, no redirects, no HTTP/2 and
// no compression, and without Transport the minimal agent build is about
// 0.2 MB smaller (agent/cmd/porthole-agent/SIZE.md). Requests are written
// with http.Request.Write and answers read with http.ReadResponse, so the
// bytes on the wire are net/http's.
type httpConns struct {
	c    *Client
	mu   sync.Mutex
	idle *httpConn // nil when none
}

type httpConn struct {
	conn net.Conn
	br   *bufio.Reader
}

// closeIdle closes the idle connection, if any.
func (h *httpConns) closeIdle() {
	h.mu.Lock()
	hc := h.idle
	h.idle = nil
	h.mu.Unlock()
	if hc != nil {
		hc.conn.Close()
	}
}

// take returns the idle connection (reused) or dials a new one.
func (h *httpConns) take(ctx context.Context, addr string) (hc *httpConn, reused bool, err error) {
	h.mu.Lock()
	hc, h.idle = h.idle, nil
	h.mu.Unlock()
	if hc != nil {
		return hc, true, nil
	}
	var raw net.Conn
	if h.c.cfg.ProxyURL != nil {
		raw, err = h.c.dialTunnel(ctx, addr)
	} else {
		raw, err = h.c.dial(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, false, err
	}
	tc := tls.Client(raw, h.c.tlsConf.Clone())
	hctx, cancel := context.WithTimeout(ctx, h.c.cfg.RequestTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, false, err
	}
	return &httpConn{conn: tc, br: bufio.NewReader(tc)}, false, nil
}

// put keeps hc as the idle connection, or closes it when one is kept.
func (h *httpConns) put(hc *httpConn) {
	h.mu.Lock()
	if h.idle == nil {
		h.idle, hc = hc, nil
	}
	h.mu.Unlock()
	if hc != nil {
		hc.conn.Close()
	}
}

// errStale is a reused connection that failed before any byte of the
// answer arrived: the server closed it while it was idle.
var errStale = errors.New("idle connection closed by the server")

// roundTrip sends req (with body, which may be nil) and reads the answer
// and its body with read. err is a failure before a complete answer
// header, as *url.Error like http.Client.Do's, so messages and the net
// error chain retry.Classify looks at are unchanged; bodyErr is read's
// failure, with the response. A request that meets a stale reused
// connection is sent once more on a new one, as net/http does.
func (h *httpConns) roundTrip(ctx context.Context, req *http.Request, body []byte, read func(io.Reader) ([]byte, error)) (resp *http.Response, b []byte, bodyErr, err error) {
	for first := true; ; first = false {
		if body != nil {
			req.Body = io.NopCloser(bytes.NewReader(body))
			req.ContentLength = int64(len(body))
		}
		resp, b, bodyErr, err = h.once(ctx, req, read)
		if errors.Is(err, errStale) && first {
			continue
		}
		if err != nil {
			return nil, nil, nil, requestError(req.Method, req.URL.String(), err)
		}
		return resp, b, bodyErr, nil
	}
}

// requestError names the request err happened to as net/http's client
// does: `Put "https://…": err`.
func requestError(method, rawURL string, err error) *url.Error {
	return &url.Error{Op: method[:1] + strings.ToLower(method[1:]), URL: rawURL, Err: err}
}

func (h *httpConns) once(ctx context.Context, req *http.Request, read func(io.Reader) ([]byte, error)) (*http.Response, []byte, error, error) {
	hc, reused, err := h.take(ctx, req.URL.Host)
	if err != nil {
		return nil, nil, nil, err
	}
	// ctx ending interrupts the exchange.
	stop := context.AfterFunc(ctx, func() { _ = hc.conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error, beforeAnswer bool) (*http.Response, []byte, error, error) {
		stop()
		hc.conn.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, nil, nil, cerr
		}
		if beforeAnswer && reused {
			return nil, nil, nil, errStale
		}
		return nil, nil, nil, err
	}
	if err := req.Write(hc.conn); err != nil {
		return fail(err, true)
	}
	if _, err := hc.br.Peek(1); err != nil {
		return fail(err, true)
	}
	resp, err := http.ReadResponse(hc.br, req)
	if err != nil {
		return fail(err, false)
	}
	b, bodyErr := read(resp.Body)
	if !stop() {
		hc.conn.Close()
		return nil, nil, nil, ctx.Err()
	}
	if bodyErr != nil || resp.Close {
		hc.conn.Close()
	} else {
		h.put(hc)
	}
	return resp, b, bodyErr, nil
}
