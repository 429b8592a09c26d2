package doctor

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/config"
)

// network dials the way the agent does: resolve overrides first, then the
// HTTP CONNECT proxy when one is configured.
type network struct {
	cfg     *config.Config
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	proxy   *url.URL
	now     func() time.Time
	timeout time.Duration
}

func newNetwork(cfg *config.Config, o Options) *network {
	return &network{cfg: cfg, dial: o.DialContext, proxy: cfg.Proxy.URL, now: o.Now, timeout: o.Timeout}
}

// close releases what the checks opened; every request closes its own
// connection, so there is nothing left today.
func (n *network) close() {}

// via describes the path for messages: "" or " via proxy host:port".
func (n *network) via() string {
	if n.proxy == nil {
		return ""
	}
	return " via proxy " + n.proxy.Host
}

// dialTCP connects to hostport as the agent would.
func (n *network) dialTCP(ctx context.Context, hostport string) (net.Conn, error) {
	target := n.cfg.DialAddr(hostport)
	if n.proxy == nil {
		return n.dial(ctx, "tcp", target)
	}
	return n.connect(ctx, target)
}

// connect opens a tunnel through the HTTP proxy with CONNECT (RFC 9110
// section 9.3.6), with Basic credentials when the proxy URL carries them.
func (n *network) connect(ctx context.Context, target string) (net.Conn, error) {
	paddr := n.proxy.Host
	if n.proxy.Port() == "" {
		paddr = net.JoinHostPort(n.proxy.Hostname(), "80")
	}
	c, err := n.dial(ctx, "tcp", paddr)
	if err != nil {
		return nil, &proxyError{addr: paddr, err: err}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target, Header: http.Header{}}
	if u := n.proxy.User; u != nil {
		pw, _ := u.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)))
	}
	if err := req.Write(c); err != nil {
		_ = c.Close()
		return nil, &proxyError{addr: paddr, err: err}
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		_ = c.Close()
		return nil, &proxyError{addr: paddr, err: err}
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_ = c.Close()
		return nil, &proxyError{addr: paddr, status: resp.Status}
	}
	_ = c.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		return &bufConn{Conn: c, r: br}, nil
	}
	return c, nil
}

type proxyError struct {
	addr   string
	status string // the proxy's answer to CONNECT, or ""
	err    error
}

func (e *proxyError) Error() string {
	if e.status != "" {
		return fmt.Sprintf("the proxy %s refused the tunnel: %s", e.addr, e.status)
	}
	return fmt.Sprintf("the proxy %s: %v", e.addr, e.err)
}

func (e *proxyError) Unwrap() error { return e.err }

// bufConn keeps bytes the CONNECT reader read past the response.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// tlsConfig is the agent's client TLS configuration for host: the
// configured roots (nil = system roots) and the injected clock.
func (n *network) tlsConfig(host string) *tls.Config {
	return &tls.Config{
		ServerName: host,
		RootCAs:    n.cfg.RootCAs,
		MinVersion: tls.VersionTLS12,
		Time:       n.now,
	}
}

// timeFreeTLSConfig verifies the chain and the host name but not the
// validity dates: used only to read the server's Date header (no secret is
// sent), so a device whose clock says 1970 can still learn the time.
func (n *network) timeFreeTLSConfig(host string) *tls.Config {
	roots := n.cfg.RootCAs
	return &tls.Config{
		ServerName:         host,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			leaf := cs.PeerCertificates[0]
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := leaf.Verify(x509.VerifyOptions{
				DNSName:       cs.ServerName,
				Roots:         roots,
				Intermediates: inter,
				CurrentTime:   leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2),
			})
			return err
		},
	}
}

// httpClient returns a client that dials like the agent, speaks HTTP/1.1
// over one connection per request and follows no redirect. It writes the
// request with http.Request.Write and reads the answer with
// http.ReadResponse instead of using net/http's Transport, which the agent
// binary then does not link (agent/cmd/porthole-agent/SIZE.md).
func (n *network) httpClient(tc *tls.Config) *oneShotClient {
	return &oneShotClient{n: n, tc: tc}
}

type oneShotClient struct {
	n  *network
	tc *tls.Config
}

// Do sends req on a new connection. Errors are *url.Error, as from
// http.Client.Do, wrapping the dial, TLS or HTTP error. The response body
// closes the connection.
func (c *oneShotClient) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.do(req)
	if err != nil {
		op := req.Method[:1] + strings.ToLower(req.Method[1:])
		return nil, &url.Error{Op: op, URL: req.URL.String(), Err: err}
	}
	return resp, nil
}

func (c *oneShotClient) do(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "443")
	}
	raw, err := c.n.dialTCP(ctx, addr)
	if err != nil {
		return nil, err
	}
	tc := c.tc.Clone()
	if tc.ServerName == "" {
		tc.ServerName = req.URL.Hostname()
	}
	conn := tls.Client(raw, tc)
	hctx, cancel := ctx, context.CancelFunc(func() {})
	if c.n.timeout > 0 {
		hctx, cancel = context.WithTimeout(ctx, c.n.timeout)
		// The request and the answer's header get the same time again.
		_ = conn.SetDeadline(time.Now().Add(2 * c.n.timeout))
	}
	err = conn.HandshakeContext(hctx)
	cancel()
	if err != nil {
		raw.Close()
		return nil, err
	}
	// ctx ending interrupts the exchange.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	req.Close = true // Connection: close
	if err := req.Write(conn); err != nil {
		stop()
		conn.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		stop()
		conn.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	resp.Body = &connBody{ReadCloser: resp.Body, close: func() { stop(); conn.Close() }}
	return resp, nil
}

// connBody closes the connection with the body.
type connBody struct {
	io.ReadCloser
	close func()
}

func (b *connBody) Close() error {
	err := b.ReadCloser.Close()
	b.close()
	return err
}

// explainDial turns a connect error into words and a fix.
func explainDial(err error, hostport, via string) (detail, fix string) {
	_, port, _ := net.SplitHostPort(hostport)
	var (
		pe  *proxyError
		dns *net.DNSError
		ne  net.Error
	)
	switch {
	case errors.As(err, &pe) && pe.status != "":
		fix = "check proxy.url (host, port, user and password)"
		if strings.HasPrefix(pe.status, "407") {
			fix = "the proxy wants a user and password: put them in proxy.url (http://user:password@host:port)"
		}
		return fmt.Sprintf("cannot open a tunnel to %s: %s", hostport, pe.Error()), fix
	case errors.As(err, &dns):
		return fmt.Sprintf("cannot find %s: %v", hostport, dns), "check the host name in the config and the device's DNS servers"
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("%s refused the connection%s", hostport, via), "check the host and port; the service is not listening there"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return fmt.Sprintf("no route to %s%s", hostport, via), "check the device's network connection and default route"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer from %s%s", hostport, via), fmt.Sprintf("a firewall may be dropping outgoing TCP port %s: allow it", port)
	}
	return fmt.Sprintf("cannot connect to %s%s: %v", hostport, via, err), fmt.Sprintf("check the network and that outgoing TCP port %s is allowed", port)
}

// explainTLS turns a handshake or request error into words and a fix.
func explainTLS(err error, now time.Time) (detail, fix string) {
	var (
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
		hostname x509.HostnameError
		record   tls.RecordHeaderError
		alert    tls.AlertError
	)
	switch {
	case errors.As(err, &unknown):
		issuer := ""
		if unknown.Cert != nil {
			issuer = " (issued by " + certName(unknown.Cert.Issuer.CommonName, unknown.Cert.Issuer.String()) + ")"
		}
		return "the server's certificate is not trusted" + issuer,
			"set ca_file to the CA that issued it (a TLS-inspecting firewall needs its CA too), or check the date"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fmt.Sprintf("the server's certificate is expired or not yet valid for this device's date (%s)", day(now)),
			"check the date: enable NTP or set the clock"
	case errors.As(err, &invalid):
		return "the server's certificate is not valid: " + invalid.Error(), "set ca_file to the right CA, or check the date"
	case errors.As(err, &hostname):
		return "the server's certificate is for other names: " + hostname.Error(),
			"check the host name in the config; a proxy or firewall may be intercepting TLS"
	case errors.As(err, &record):
		return "the server does not speak TLS on this port", "check the port in the config (or resolve entry)"
	case errors.As(err, &alert):
		return "the server ended the TLS handshake: " + alert.Error(), "check that the device's TLS client certificate, if any, is accepted"
	}
	return "TLS handshake failed: " + err.Error(), "check ca_file and the date"
}

func certName(cn, full string) string {
	if cn != "" {
		return cn
	}
	return full
}
