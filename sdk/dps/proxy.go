package dps

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/porthole-iot/porthole/sdk/retry"
)

// dialTunnel opens a TCP tunnel to addr through the HTTP proxy in
// Config.ProxyURL with CONNECT (RFC 9110 §9.3.6), as net/http does for
// HTTPS and gorilla/websocket for WSS; MQTT/TLS needs it done by hand.
// Credentials in the proxy URL go in Proxy-Authorization (Basic).
func (c *Client) dialTunnel(ctx context.Context, addr string) (net.Conn, error) {
	p := c.cfg.ProxyURL
	proxyAddr := p.Host
	if p.Port() == "" {
		proxyAddr = net.JoinHostPort(p.Hostname(), "80")
	}
	conn, err := c.dial(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, fmt.Errorf("dps: proxy %s: %w", p.Redacted(), err)
	}
	// ctx ending interrupts the exchange below.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (net.Conn, error) {
		stop()
		conn.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("dps: proxy %s: CONNECT %s: %w", p.Redacted(), addr, err)
	}
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: addr},
		Host:   addr,
		Header: http.Header{},
	}
	if u := p.User; u != nil {
		pw, _ := u.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)))
	}
	if err := req.Write(conn); err != nil {
		return fail(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fail(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("proxy answered %s", resp.Status)
		switch resp.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			err = retry.Transient(err)
		default:
			// 407 and the like: retrying will not help.
			err = backoff.Permanent(err)
		}
		return fail(err)
	}
	if !stop() {
		conn.Close()
		return nil, ctx.Err()
	}
	_ = conn.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		// The proxy already relayed bytes of the tunnel; keep them.
		return &bufferedConn{Conn: conn, r: br}, nil
	}
	return conn, nil
}

// bufferedConn reads first what a bufio.Reader already holds.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }
