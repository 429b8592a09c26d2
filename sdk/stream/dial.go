package stream

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// DefaultHandshakeTimeout bounds the TCP, TLS and WebSocket handshakes of
// Dial when DialOptions.HandshakeTimeout is zero.
const DefaultHandshakeTimeout = 30 * time.Second

// defaultReadBufferSize is DialOptions.ReadBufferSize's default.
const defaultReadBufferSize = 4 << 10

// DialOptions configures Dial. The zero value dials directly with the
// system's root CAs.
type DialOptions struct {
	// TLSConfig is cloned and used for the TLS handshake; set RootCAs to
	// trust a private CA (hubsim's). nil means the system roots. ServerName
	// defaults to the URL's host.
	TLSConfig *tls.Config
	// Proxy returns the HTTP proxy (tunnelled with CONNECT) for a request,
	// for example http.ProxyFromEnvironment; nil dials directly.
	Proxy func(*http.Request) (*url.URL, error)
	// NetDialContext dials the TCP connection (to the endpoint or the
	// proxy); nil uses a net.Dialer. Tests and --resolve style host mapping
	// plug in here.
	NetDialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// HandshakeTimeout bounds the whole opening handshake; 0 means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Subprotocols offered in Sec-WebSocket-Protocol; usually none.
	Subprotocols []string
	// Header holds extra request headers. Authorization is always set by
	// Dial and must not be given here.
	Header http.Header
	// ReadBufferSize is the size of the WebSocket read buffer; 0 means
	// 4 KiB. It holds frame headers and small frames: reads of a frame's
	// payload with a buffer at least this large bypass it, so a larger
	// buffer only adds a copy.
	ReadBufferSize int
}

// HandshakeError reports that the streaming endpoint refused the WebSocket
// upgrade with an HTTP status (401 for a bad or reused token, 404 for an
// unknown or ended stream, ...). It wraps ErrHandshake.
type HandshakeError struct {
	StatusCode int
	Status     string // the status line's text, e.g. "401 Unauthorized"
	Body       string // start of the response body, printable, at most 256 bytes
}

func (e *HandshakeError) Error() string {
	s := "stream: websocket handshake refused: " + e.Status
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

func (e *HandshakeError) Unwrap() error { return ErrHandshake }

// Dial opens the device stream's WebSocket at rawURL (the URL the hub handed
// out, wss://host:port/...) and authenticates with token as a Bearer
// credential. The token is never logged or put into errors.
func Dial(ctx context.Context, rawURL, token string, opts DialOptions) (*Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("stream: dial: bad URL: %w", err)
	}
	if u.Scheme != "wss" {
		return nil, fmt.Errorf("stream: dial: URL scheme %q is not wss", u.Scheme)
	}
	if token == "" {
		return nil, errors.New("stream: dial: empty token")
	}
	hdr := make(http.Header, len(opts.Header)+1)
	for k, v := range opts.Header {
		if http.CanonicalHeaderKey(k) == "Authorization" {
			return nil, errors.New("stream: dial: Authorization must not be set in DialOptions.Header")
		}
		hdr[k] = v
	}
	hdr.Set("Authorization", authScheme+token)

	timeout := opts.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	var tlsConf *tls.Config
	if opts.TLSConfig != nil {
		tlsConf = opts.TLSConfig.Clone()
	}
	rbuf := opts.ReadBufferSize
	if rbuf <= 0 {
		rbuf = defaultReadBufferSize
	}
	d := websocket.Dialer{
		NetDialContext:    opts.NetDialContext,
		Proxy:             opts.Proxy,
		TLSClientConfig:   tlsConf,
		HandshakeTimeout:  timeout,
		ReadBufferSize:    rbuf,
		WriteBufferSize:   writeBufferSize,
		Subprotocols:      opts.Subprotocols,
		EnableCompression: false,
	}
	dial := opts.NetDialContext
	if dial == nil {
		var nd net.Dialer
		dial = nd.DialContext
	}
	// The TCP connection (to the endpoint, or to the proxy that tunnels to
	// it) goes under TLS wrapped in a batchConn. gorilla dials once, on
	// this goroutine.
	var batch *batchConn
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		batch = newBatchConn(c)
		return batch, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ws, resp, err := d.DialContext(ctx, u.String(), hdr)
	if err != nil {
		if resp != nil && errors.Is(err, websocket.ErrBadHandshake) {
			he := &HandshakeError{StatusCode: resp.StatusCode, Status: resp.Status, Body: bodySnippet(resp.Body)}
			return nil, fmt.Errorf("stream: dial %s: %w", redactURL(u), he)
		}
		return nil, fmt.Errorf("stream: dial %s: %w", redactURL(u), err)
	}
	c := NewConn(ws)
	c.batch = batch
	if batch != nil {
		batch.attach(&c.wdeadline)
	}
	return c, nil
}

// bodySnippet returns the printable start of a refused handshake's body.
func bodySnippet(body io.ReadCloser) string {
	if body == nil {
		return ""
	}
	defer body.Close()
	b, _ := io.ReadAll(io.LimitReader(body, 256))
	b = bytes.TrimSpace(b)
	if !utf8.Valid(b) {
		return ""
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, string(b))
}

// redactURL keeps scheme, host and path: stream URLs carry no secrets in the
// path, but a query string might.
func redactURL(u *url.URL) string {
	v := *u
	v.RawQuery = ""
	v.Fragment = ""
	v.User = nil
	return v.String()
}
