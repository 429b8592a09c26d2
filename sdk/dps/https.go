package dps

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"github.com/porthole-iot/porthole/sdk/retry"
)

// httpsSession speaks the DPS device REST API (Azure/azure-rest-api-specs
// specification/deviceprovisioningservices/data-plane/DeviceProvisioningServices/device/routes.tsp):
//
//	PUT  /{idScope}/registrations/{registrationId}/register?api-version=…
//	GET  /{idScope}/registrations/{registrationId}/operations/{operationId}?api-version=…
//	POST /{idScope}/registrations/{registrationId}?api-version=…
//
// It is stateless; the Client's httpConns keeps a connection between calls.
type httpsSession struct{ c *Client }

func (s httpsSession) register(ctx context.Context, body []byte) (response, error) {
	return s.c.do(ctx, http.MethodPut, s.c.regPath()+pathRegister, body)
}

func (s httpsSession) poll(ctx context.Context, operationID string) (response, error) {
	return s.c.do(ctx, http.MethodGet, s.c.regPath()+pathOperations+url.PathEscape(operationID), nil)
}

func (s httpsSession) lookup(ctx context.Context, body []byte) (response, error) {
	return s.c.do(ctx, http.MethodPost, s.c.regPath(), body)
}

func (httpsSession) close() {}

// regPath is "/{idScope}/registrations/{registrationId}", escaped.
func (c *Client) regPath() string {
	return "/" + url.PathEscape(c.cfg.IDScope) + pathRegistrations + url.PathEscape(c.cfg.RegistrationID)
}

// do sends one request with the headers the SDKs send (Node
// provisioning/transport/http/src/http.ts _defaultHeaders; C
// provisioning_client/src/prov_transport_http_client.c) and a fresh SAS
// when the device uses a symmetric key. Transport failures come back as
// errors that package retry classifies; any HTTP answer comes back as a
// response.
func (c *Client) do(ctx context.Context, method, path string, body []byte) (response, error) {
	u := url.URL{
		Scheme:   "https",
		Host:     net.JoinHostPort(c.host, c.httpsPort),
		RawPath:  path,
		RawQuery: queryAPIVersion + "=" + url.QueryEscape(c.cfg.APIVersion),
	}
	u.Path, _ = url.PathUnescape(path)
	// Errors name the request once, as net/http's client does
	// (`Put "https://…": cause`); the caller (call) adds "dps: <operation>:".
	// The URL holds no secret: the SAS is a header.
	reqErr := func(err error) error { return requestError(method, u.String(), err) }
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return response{}, err // a *url.Error naming the URL
	}
	h := req.Header
	h.Set(headerAccept, mimeJSON)
	if body != nil {
		h.Set(headerContentType, mimeJSONCharset)
	}
	h.Set(headerUserAgent, userAgent)
	if c.signer != nil {
		tok, _, err := c.signer.Sign(sasTTL)
		if err != nil {
			return response{}, fmt.Errorf("sign: %w", err)
		}
		h.Set(headerAuthorization, tok)
	}
	resp, b, err, terr := c.https.roundTrip(ctx, req, body, readBody)
	if terr != nil {
		// Already a *url.Error naming the request; it keeps the net error
		// chain for retry.Classify.
		return response{}, terr
	}
	if errors.Is(err, ErrBadResponse) {
		return response{}, reqErr(err)
	}
	if err != nil {
		// A body cut short is a transport failure worth retrying.
		return response{}, reqErr(fmt.Errorf("reading body: %w", retry.Transient(err)))
	}
	r := response{status: resp.StatusCode, body: b}
	// Retry-After: header name per RFC 9110 §10.2.3; DPS sends it in lower
	// case (Node provisioning/transport/http/src/http.ts reads 'retry-after').
	if v := resp.Header.Get("Retry-After"); v != "" {
		r.retryAfter, r.hasRetryAfter = retry.ParseRetryAfter(v, c.cfg.Now())
	}
	if v := resp.Header.Get(headerErrorCode); v != "" {
		r.errorCode, _ = strconv.Atoi(v)
	}
	c.log.Debug("dps: https", "method", method, "status", resp.StatusCode)
	return r, nil
}
