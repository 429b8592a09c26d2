package service

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/porthole-iot/porthole/sdk/auth"
	"github.com/porthole-iot/porthole/sdk/stream"
)

// Config configures a Client (IoT Hub) or a DPSClient (Device Provisioning
// Service). The same code talks to Azure and to hubsim; only the connection
// string, the trusted roots and the dialer differ.
type Config struct {
	// ConnectionString is a shared-access-policy connection string,
	// "HostName=…;SharedAccessKeyName=…;SharedAccessKey=…": the hub's (e.g.
	// iothubowner, service) for New, the DPS instance's (e.g.
	// provisioningserviceowner) for NewDPS. HostName may carry a port
	// ("host:8443") for a simulator on an unprivileged port; tokens then
	// cover the host without the port.
	ConnectionString string
	// RootCAs, if non-nil, replaces the system roots (hubsim's CA).
	RootCAs *x509.CertPool
	// ProxyURL, if non-nil, is the HTTP proxy for every request and stream
	// (tunnelled with CONNECT). nil uses the environment (HTTPS_PROXY,
	// NO_PROXY).
	ProxyURL *url.URL
	// DialContext, if non-nil, opens every TCP connection (to the service,
	// the streaming endpoint or the proxy): tests and --resolve style host
	// mapping plug in here.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// HTTPClient, if non-nil, is used for REST requests instead of a client
	// built from the fields above. Stream WebSockets still use RootCAs,
	// ProxyURL and DialContext.
	HTTPClient *http.Client
	// Logger receives debug logs of requests (method, path, status); nil
	// discards them. Keys and tokens are never logged.
	Logger *slog.Logger
	// Now is the clock for token expiry and Retry-After dates; nil means
	// time.Now.
	Now func() time.Time
}

// ErrConfig is wrapped by errors about a Config.
var ErrConfig = errors.New("service: invalid configuration")

// restClient is what Client and DPSClient share: one host, one policy
// signer, one HTTP client.
type restClient struct {
	host    string // host[:port] requests go to
	http    *http.Client
	own     *http.Transport // non-nil when this client built the transport; closed by close
	signer  *auth.KeySigner
	now     func() time.Time
	log     *slog.Logger
	dialOpt stream.DialOptions // for stream WebSockets

	mu     sync.Mutex
	token  string    // guarded by mu: the cached policy token
	expiry time.Time // guarded by mu
}

func newRESTClient(cfg Config) (*restClient, error) {
	if cfg.ConnectionString == "" {
		return nil, fmt.Errorf("%w: no connection string", ErrConfig)
	}
	cs, err := auth.ParseServiceConnectionString(cfg.ConnectionString)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	host := cs.HostName
	if h, _, err := net.SplitHostPort(host); err == nil {
		cs.HostName = h // the token covers the host name without the port
	}
	signer, err := cs.Signer(now)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	proxy := http.ProxyFromEnvironment
	if cfg.ProxyURL != nil {
		proxy = http.ProxyURL(cfg.ProxyURL)
	}
	tlsCfg := &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}
	r := &restClient{
		host:   host,
		http:   cfg.HTTPClient,
		signer: signer,
		now:    now,
		log:    log,
		dialOpt: stream.DialOptions{
			TLSConfig:      tlsCfg,
			Proxy:          proxy,
			NetDialContext: cfg.DialContext,
		},
	}
	if r.http == nil {
		dial := cfg.DialContext
		if dial == nil {
			dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		}
		r.own = &http.Transport{
			Proxy:                 proxy,
			DialContext:           dial,
			TLSClientConfig:       tlsCfg.Clone(),
			TLSHandshakeTimeout:   15 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   4,
			ExpectContinueTimeout: time.Second,
		}
		r.http = &http.Client{Transport: r.own}
	}
	return r, nil
}

// close drops idle connections of a transport this client built.
func (r *restClient) close() {
	if r.own != nil {
		r.own.CloseIdleConnections()
	}
}

// authorization returns a cached policy token, signing a new one when the
// cached one is close to expiry.
func (r *restClient) authorization() (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.token != "" && r.now().Add(tokenRenewBefore).Before(r.expiry) {
		return r.token, nil
	}
	tok, exp, err := r.signer.Sign(tokenTTL)
	if err != nil {
		return "", fmt.Errorf("signing: %w", err)
	}
	r.token, r.expiry = tok, exp
	return tok, nil
}

// escapePath joins path segments, percent-encoding each as
// encodeURIComponent does (device ids may hold '#', '?', '%', '/' …).
// [Azure/azure-iot-sdk-node service/src/device_method.ts (encodeURIComponent(deviceId))]
func escapePath(segs ...string) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(auth.EncodeComponent(s))
	}
	return b.String()
}

// maxErrorBody bounds how much of an error body is read.
const maxErrorBody = 64 << 10

// maxBody bounds a success body (twins are at most a few tens of KiB,
// enrollment queries a few hundred).
const maxBody = 4 << 20

// request is one REST call.
type request struct {
	method     string
	path       string // escaped, from escapePath
	apiVersion string
	header     http.Header
	body       any // marshalled as JSON when non-nil; json.RawMessage sent as is
	out        any // decoded from a non-empty 2xx body when non-nil
}

// do runs req and returns the response headers of a 2xx answer, or an
// *Error for any other status.
func (r *restClient) do(ctx context.Context, req request) (int, http.Header, error) {
	var body io.Reader
	if req.body != nil {
		var b []byte
		if raw, ok := req.body.(json.RawMessage); ok {
			b = raw
		} else {
			var err error
			if b, err = json.Marshal(req.body); err != nil {
				return 0, nil, fmt.Errorf("encoding request: %w", err)
			}
		}
		body = bytes.NewReader(b)
	}
	u := "https://" + r.host + req.path + "?" + url.Values{queryAPIVersion: {req.apiVersion}}.Encode()
	hr, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return 0, nil, fmt.Errorf("building request: %w", err)
	}
	for k, v := range req.header {
		hr.Header[k] = v
	}
	tok, err := r.authorization()
	if err != nil {
		return 0, nil, err
	}
	hr.Header.Set("Authorization", tok)
	if body != nil {
		hr.Header.Set("Content-Type", contentTypeJSON)
	}
	hr.Header.Set("Accept", "application/json")
	resp, err := r.http.Do(hr)
	if err != nil {
		// net/http puts the URL, never headers, into its errors.
		return 0, nil, fmt.Errorf("%s %s: %w", req.method, req.path, err)
	}
	defer resp.Body.Close()
	r.log.Debug("service request", "method", req.method, "path", req.path, "status", resp.StatusCode)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return resp.StatusCode, resp.Header, parseError(resp.StatusCode, resp.Header, b, r.now())
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: reading response: %w", req.method, req.path, err)
	}
	if len(b) > maxBody {
		return resp.StatusCode, resp.Header, protocolError("%s %s: response larger than %d bytes", req.method, req.path, maxBody)
	}
	if req.out != nil && len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, req.out); err != nil {
			return resp.StatusCode, resp.Header, protocolError("%s %s: decoding response: %v", req.method, req.path, err)
		}
	}
	return resp.StatusCode, resp.Header, nil
}

// call runs req on the item id and wraps its error as
// "service: <op> <id>: …".
func (r *restClient) call(ctx context.Context, op, id string, req request) error {
	if _, _, err := r.do(ctx, req); err != nil {
		return fmt.Errorf("service: %s %s: %w", op, id, err)
	}
	return nil
}

// callJSON is call that decodes the answer into a new T.
func callJSON[T any](ctx context.Context, r *restClient, op, id string, req request) (*T, error) {
	var out T
	req.out = &out
	if err := r.call(ctx, op, id, req); err != nil {
		return nil, err
	}
	return &out, nil
}

// ifMatch returns the If-Match header for etag: the quoted etag, or "*"
// for an unconditional write. The Node registry client sends If-Match: *
// for unconditional updates and deletes.
// [Azure/azure-iot-sdk-node service/src/registry.ts (update, delete)]
func ifMatch(etag string) http.Header {
	if etag == "" || etag == "*" {
		return http.Header{hdrIfMatch: {"*"}}
	}
	if !strings.HasPrefix(etag, `"`) {
		etag = `"` + etag + `"`
	}
	return http.Header{hdrIfMatch: {etag}}
}
