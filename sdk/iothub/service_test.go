package iothub

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/auth"
)

// service drives the sim's hub as a back end would: through the hub's
// service REST API with a shared-access-policy token (and hubsim's admin
// API for cloud-to-device messages, which Azure only offers over AMQP).
type service struct {
	t      *testing.T
	e      *env
	client *http.Client
	token  string
}

func (e *env) service(t *testing.T) *service {
	t.Helper()
	cs, err := auth.ParseServiceConnectionString(e.sim.HubConnectionString(e.host))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.PolicyToken(cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return &service{t: t, e: e, client: e.sim.HTTPClient(), token: tok}
}

// do sends a request and decodes a JSON answer into out (if non-nil); it
// returns the response headers and fails the test on a status >= 300.
func (s *service) do(ctx context.Context, method, path string, header http.Header, in, out any) http.Header {
	s.t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			s.t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	u := "https://" + s.e.host + path
	if !strings.Contains(path, "?") {
		u += "?api-version=2020-09-30"
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		s.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	// The owner token also authenticates hubsim's admin API (/hubsim/…).
	req.Header.Set("Authorization", s.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		s.t.Fatalf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.Header
}

// patchDesired merges desired properties into the device's twin.
func (s *service) patchDesired(ctx context.Context, deviceID string, desired map[string]any) {
	s.t.Helper()
	s.do(ctx, http.MethodPatch, "/twins/"+url.PathEscape(deviceID), http.Header{"If-Match": {`"*"`}},
		map[string]any{"properties": map[string]any{"desired": desired}}, nil)
}

// methodResult is the service's view of a direct-method answer.
type methodResult struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

func (s *service) invoke(ctx context.Context, deviceID, method string, payload json.RawMessage) methodResult {
	s.t.Helper()
	var res methodResult
	s.do(ctx, http.MethodPost, "/twins/"+url.PathEscape(deviceID)+"/methods", nil, map[string]any{
		"methodName": method, "payload": payload, "responseTimeoutInSeconds": 10, "connectTimeoutInSeconds": 10,
	}, &res)
	return res
}

// streamResult is the service's view of a stream request.
type streamResult struct {
	Accepted bool
	URL      string
	Token    string
}

func (s *service) requestStream(ctx context.Context, deviceID, name string) streamResult {
	s.t.Helper()
	h := s.do(ctx, http.MethodPost, "/twins/"+url.PathEscape(deviceID)+"/streams/"+url.PathEscape(name), http.Header{
		"Iothub-Streaming-Connect-Timeout-In-Seconds":  {"10"},
		"Iothub-Streaming-Response-Timeout-In-Seconds": {"10"},
	}, nil, nil)
	return streamResult{
		Accepted: h.Get("iothub-streaming-is-accepted") == "True",
		URL:      h.Get("iothub-streaming-url"),
		Token:    h.Get("iothub-streaming-auth-token"),
	}
}

// createX509Device registers a self-signed X.509 device by thumbprint.
func (s *service) createX509Device(ctx context.Context, deviceID, thumbprint string) {
	s.t.Helper()
	s.do(ctx, http.MethodPut, "/devices/"+url.PathEscape(deviceID), nil, map[string]any{
		"deviceId": deviceID,
		"status":   "enabled",
		"authentication": map[string]any{
			"type":           "selfSigned",
			"x509Thumbprint": map[string]any{"primaryThumbprint": thumbprint},
		},
	}, nil)
}

// createModule adds a SAS module to a device and returns its key.
func (s *service) createModule(ctx context.Context, deviceID, moduleID, key string) {
	s.t.Helper()
	s.do(ctx, http.MethodPut, "/devices/"+url.PathEscape(deviceID)+"/modules/"+url.PathEscape(moduleID), nil, map[string]any{
		"deviceId": deviceID,
		"moduleId": moduleID,
		"authentication": map[string]any{
			"type":         "sas",
			"symmetricKey": map[string]any{"primaryKey": key, "secondaryKey": key},
		},
	}, nil)
}

func (s *service) invokeModule(ctx context.Context, deviceID, moduleID, method string, payload json.RawMessage) methodResult {
	s.t.Helper()
	var res methodResult
	s.do(ctx, http.MethodPost, "/twins/"+url.PathEscape(deviceID)+"/modules/"+url.PathEscape(moduleID)+"/methods", nil, map[string]any{
		"methodName": method, "payload": payload, "responseTimeoutInSeconds": 10, "connectTimeoutInSeconds": 10,
	}, &res)
	return res
}
