package iothub

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/porthole-iot/porthole/sdk/retry"
)

// dialer opens the network connection of one MQTT session: TLS over TCP
// (optionally through an HTTP CONNECT tunnel) or a TLS WebSocket.
type dialer struct {
	s *settings
}

func (d dialer) netDial(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.s.DialContext != nil {
		return d.s.DialContext(ctx, network, addr)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

func (d dialer) hubAddr() string {
	return net.JoinHostPort(d.s.HostName, strconv.Itoa(d.s.port))
}

// open returns a connection ready for the MQTT CONNECT. Its errors reach
// the caller inside "iothub: connect to <hub>: …" (paho adds "network
// Error : "), so they do not repeat the package or the hub's address.
func (d dialer) open(ctx context.Context) (net.Conn, error) {
	if d.s.Transport == TransportMQTTWS {
		return d.openWebSocket(ctx)
	}
	raw, err := d.tcp(ctx, d.hubAddr())
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, d.s.tlsConfig(d.s.HostName))
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// tcp connects to addr directly or through the configured proxy.
func (d dialer) tcp(ctx context.Context, addr string) (net.Conn, error) {
	if d.s.ProxyURL == nil {
		c, err := d.netDial(ctx, "tcp", addr)
		var op *net.OpError
		switch {
		case errors.As(err, &op):
			return nil, err // "dial tcp <addr>: …" says it all
		case err != nil:
			return nil, fmt.Errorf("dial: %w", err)
		}
		return c, nil
	}
	return connectTunnel(ctx, d.netDial, d.s.ProxyURL, addr)
}

// connectTunnel opens an HTTP CONNECT tunnel to addr through proxy.
func connectTunnel(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), proxy *url.URL, addr string) (net.Conn, error) {
	proxyAddr := proxy.Host
	if proxy.Port() == "" {
		proxyAddr = net.JoinHostPort(proxy.Hostname(), "80")
	}
	c, err := dial(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, fmt.Errorf("dial proxy %s: %w", proxyAddr, err)
	}
	// The handshake below has no context of its own: close the connection
	// if ctx ends first.
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: addr},
		Host:   addr,
		Header: make(http.Header),
	}
	if u := proxy.User; u != nil {
		pw, _ := u.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(u.Username() + ":" + pw))
		req.Header.Set("Proxy-Authorization", "Basic "+cred)
	}
	fail := func(err error) (net.Conn, error) {
		stop()
		_ = c.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("proxy CONNECT to %s: %w", addr, ctx.Err())
		}
		return nil, err
	}
	if err := req.Write(c); err != nil {
		return fail(fmt.Errorf("proxy CONNECT to %s: %w", addr, err))
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fail(fmt.Errorf("proxy CONNECT to %s: %w", addr, err))
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail(fmt.Errorf("proxy CONNECT to %s: %w", addr, &retry.StatusError{Code: resp.StatusCode}))
	}
	if !stop() {
		return fail(fmt.Errorf("proxy CONNECT to %s: %w", addr, ctx.Err()))
	}
	if br.Buffered() > 0 {
		// The peer spoke first (unusual for TLS); keep what was read.
		return &bufferedConn{Conn: c, r: br}, nil
	}
	return c, nil
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// openWebSocket connects wss://<host>:<port>/$iothub/websocket with the
// "mqtt" subprotocol.
func (d dialer) openWebSocket(ctx context.Context) (net.Conn, error) {
	u := url.URL{Scheme: "wss", Host: d.hubAddr(), Path: WebSocketPath}
	wd := websocket.Dialer{
		NetDialContext:  d.netDial,
		TLSClientConfig: d.s.tlsConfig(d.s.HostName),
		Subprotocols:    []string{WebSocketSubprotocol},
		// gorilla bounds the whole handshake with this when ctx has no
		// deadline of its own.
		HandshakeTimeout: d.s.ConnectTimeout,
	}
	if d.s.ProxyURL != nil {
		wd.Proxy = http.ProxyURL(d.s.ProxyURL)
	}
	ws, resp, err := wd.DialContext(ctx, u.String(), nil)
	if err != nil {
		if resp != nil {
			_ = resp.Body.Close()
			return nil, fmt.Errorf("websocket %s: %w", u.String(), &retry.StatusError{Code: resp.StatusCode})
		}
		return nil, fmt.Errorf("websocket %s: %w", u.String(), err)
	}
	return newWSConn(ws), nil
}

// wsConn presents a WebSocket as the byte stream MQTT expects: each Write
// is one binary message, Read concatenates messages (their boundaries mean
// nothing). One goroutine reads and one writes, as paho does.
type wsConn struct {
	ws *websocket.Conn

	rmu sync.Mutex // serialises readers (paho has one)
	r   io.Reader  // current message; guarded by rmu

	wmu sync.Mutex // serialises writers
}

func newWSConn(ws *websocket.Conn) *wsConn { return &wsConn{ws: ws} }

func (c *wsConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.r == nil {
			mt, r, err := c.ws.NextReader()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) && (ce.Code == websocket.CloseNormalClosure || ce.Code == websocket.CloseNoStatusReceived) {
					return 0, io.EOF
				}
				return 0, err
			}
			if mt != websocket.BinaryMessage {
				return 0, fmt.Errorf("iothub: websocket: unexpected message type %d", mt)
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error { return c.ws.Close() }

func (c *wsConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.ws.SetWriteDeadline(t)
}

func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
