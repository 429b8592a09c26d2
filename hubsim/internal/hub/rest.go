package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/muxpath"
	"github.com/porthole-iot/porthole/hubsim/internal/query"
	"github.com/porthole-iot/porthole/hubsim/internal/sas"
)

// maxBody bounds request bodies (the hub's own limits are far lower for
// twins, 32 KiB per side; this only protects hubsim).
const maxBody = 1 << 20

// ServeHTTP serves the hub service REST API on its own mux (RegisterRoutes
// plus a catch-all), for use without hubsim's server. hubsim's server puts
// RegisterRoutes' patterns on its one mux instead.
func (s *Set) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.muxOnce.Do(func() {
		s.mux = http.NewServeMux()
		s.RegisterRoutes(s.mux)
		s.mux.Handle("/", s.NotFound())
	})
	r = muxpath.TrimTrailingSlash(r)
	if !muxpath.Serves(r.URL.EscapedPath()) {
		// ServeMux would redirect to the cleaned path; a hub answers 404.
		s.NotFound().ServeHTTP(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// hubPrefixes are the first path segments of the hub's HTTP API (service
// and device) [Azure/azure-rest-api-specs specification/iothub/data-plane];
// paths under them that no route matches are recorded as unhandled.
var hubPrefixes = []string{"devices", "twins", "messages", "statistics", "configurations", "jobs"}

// Route is one pattern of the hub service REST API and the shared access
// policy rights that let a caller use it: any one of Rights suffices.
type Route struct {
	// Pattern is the Go 1.22 http.ServeMux pattern, "METHOD /path".
	Pattern string
	// Rights are sas.RightRegistryRead, sas.RightRegistryWrite or
	// sas.RightServiceConnect.
	Rights []string
}

// restRoute is a Route with its name (for logs) and its handler; serveRoute
// enforces the rights before the handler runs.
type restRoute struct {
	method, path, name string
	rights             []string
	handle             func(h *Hub, w http.ResponseWriter, r *http.Request)
}

// restRoutes is the hub service REST API in registration order: the one
// list RegisterRoutes registers and Routes reports.
func restRoutes() []restRoute {
	var routes []restRoute
	add := func(method, path, name string, rights []string, handle func(h *Hub, w http.ResponseWriter, r *http.Request)) {
		routes = append(routes, restRoute{method, path, name, rights, handle})
	}
	add("GET", "/devices", "list devices", rightsRead, (*Hub).restListDevices)
	add("POST", "/devices/query", "query", rightsTwinRead, (*Hub).restQuery)
	add("GET", "/devices/{id}", "get device", rightsRead, func(h *Hub, w http.ResponseWriter, r *http.Request) {
		h.restGetDevice(w, r, r.PathValue("id"))
	})
	add("PUT", "/devices/{id}", "put device", rightsWrite, func(h *Hub, w http.ResponseWriter, r *http.Request) {
		h.restPutDevice(w, r, r.PathValue("id"))
	})
	add("DELETE", "/devices/{id}", "delete device", rightsWrite, func(h *Hub, w http.ResponseWriter, r *http.Request) {
		h.restDeleteDevice(w, r, r.PathValue("id"))
	})
	add("GET", "/devices/{id}/modules", "list modules", rightsRead, func(h *Hub, w http.ResponseWriter, r *http.Request) {
		h.restListModules(w, r, r.PathValue("id"))
	})
	add("DELETE", "/devices/{id}/commands", "purge c2d", rightsService, func(h *Hub, w http.ResponseWriter, r *http.Request) {
		h.restPurge(w, r, r.PathValue("id"))
	})
	add("GET", "/devices/{id}/modules/{mid}", "get module", rightsRead, func(h *Hub, w http.ResponseWriter, r *http.Request) {
		h.restGetModule(w, r, r.PathValue("id"), r.PathValue("mid"))
	})
	add("PUT", "/devices/{id}/modules/{mid}", "put module", rightsWrite, func(h *Hub, w http.ResponseWriter, r *http.Request) {
		h.restPutModule(w, r, r.PathValue("id"), r.PathValue("mid"))
	})
	add("DELETE", "/devices/{id}/modules/{mid}", "delete module", rightsWrite, func(h *Hub, w http.ResponseWriter, r *http.Request) {
		h.restDeleteModule(w, r, r.PathValue("id"), r.PathValue("mid"))
	})
	for _, p := range []string{"/twins/{id}", "/twins/{id}/modules/{mid}"} {
		add("GET", p, "get twin", rightsTwinRead, func(h *Hub, w http.ResponseWriter, r *http.Request) {
			h.restGetTwin(w, r, r.PathValue("id"), r.PathValue("mid"))
		})
		add("PATCH", p, "patch twin", rightsTwinWrite, func(h *Hub, w http.ResponseWriter, r *http.Request) {
			h.restChangeTwin(w, r, r.PathValue("id"), r.PathValue("mid"), false)
		})
		add("PUT", p, "replace twin", rightsTwinWrite, func(h *Hub, w http.ResponseWriter, r *http.Request) {
			h.restChangeTwin(w, r, r.PathValue("id"), r.PathValue("mid"), true)
		})
	}
	for _, p := range []string{"/twins/{id}/methods", "/twins/{id}/modules/{mid}/methods"} {
		add("POST", p, "invoke method", rightsService, func(h *Hub, w http.ResponseWriter, r *http.Request) {
			h.restInvoke(w, r, r.PathValue("id"), r.PathValue("mid"))
		})
	}
	for _, p := range []string{"/twins/{id}/streams/{name...}", "/twins/{id}/modules/{mid}/streams/{name...}"} {
		add("POST", p, "request stream", rightsService, func(h *Hub, w http.ResponseWriter, r *http.Request) {
			h.restStream(w, r, r.PathValue("id"), r.PathValue("mid"), r.PathValue("name"))
		})
	}
	add("GET", "/statistics/devices", "device statistics", rightsRead, (*Hub).restDeviceStats)
	add("GET", "/statistics/service", "service statistics", rightsTwinRead, (*Hub).restServiceStats)
	return routes
}

// Routes lists every route pattern of the hub service REST API with the
// rights it accepts, in registration order. RegisterRoutes also puts
// 405 and 404 handlers on the mux; those are not routes.
func (s *Set) Routes() []Route {
	rs := restRoutes()
	out := make([]Route, len(rs))
	for i, r := range rs {
		out[i] = Route{Pattern: r.method + " " + r.path, Rights: append([]string(nil), r.rights...)}
	}
	return out
}

// RegisterRoutes puts the hub service REST API on mux as Go 1.22
// method+path patterns (Paths and shapes: [Azure/azure-iot-sdk-node
// service/src/service.json (api-version 2020-09-30)]; any api-version is
// accepted). The hub is picked by the Host header (port stripped,
// case-insensitive), else the only hub, else the connection's local
// address. A known path with another verb answers 405 InvalidOperation
// before authorization; unknown paths under the hub's prefixes answer 404
// and are recorded as unhandled. /messages… (AMQP-only in Azure) is one of
// those.
func (s *Set) RegisterRoutes(mux *http.ServeMux) {
	// Each path's known verbs; every other verb answers 405.
	paths := map[string][]string{}
	for _, rt := range restRoutes() {
		mux.Handle(rt.method+" "+rt.path, s.serveRoute(rt.name, rt.rights, rt.handle))
		paths[rt.path] = append(paths[rt.path], rt.method)
	}

	// "/devices/query" also matches "/devices/{id}": its other verbs must
	// answer 405 rather than reach the device routes.
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		mux.Handle(m+" /devices/query", s.methodNotAllowed())
	}
	for path := range paths {
		if path != "/devices/query" { // its other verbs reach "/devices/{id}": 405 too
			mux.Handle(path, s.methodNotAllowed())
		}
	}
	// Without these, ServeMux would redirect ".../streams" to the subtree
	// ".../streams/" of the {name...} patterns.
	mux.Handle("/twins/{id}/streams", s.NotFound())
	mux.Handle("/twins/{id}/modules/{mid}/streams", s.NotFound())
	for _, p := range hubPrefixes {
		if _, ok := paths["/"+p]; !ok {
			mux.Handle("/"+p, s.NotFound())
		}
		mux.Handle("/"+p+"/", s.NotFound())
	}
}

// serveRoute picks the hub, checks the caller's rights and runs handle.
func (s *Set) serveRoute(name string, rights []string, handle func(h *Hub, w http.ResponseWriter, r *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := s.hubFor(w, r)
		if !ok {
			return
		}
		if r.Method == http.MethodHead {
			// A GET pattern also matches HEAD, which the hub does not serve.
			writeRESTError(w, errMethodNotAllowed, r.Method+" is not supported on "+r.URL.Path, h.now())
			return
		}
		if name == "request stream" && r.PathValue("name") == "" {
			h.notFound(w, r)
			return
		}
		if err := h.authorize(r, rights); err != nil {
			h.log.Info("rest unauthorized", "route", name, "err", err)
			writeRESTError(w, errUnauthorized, err.Error(), h.now())
			return
		}
		if f := s.cfg.Faults; f != nil && f.ThrottleREST != nil {
			if d, throttle := f.ThrottleREST(h.host, r); throttle {
				h.counters.throttled.Add(1)
				w.Header().Set(hdrRetryAfter, strconv.Itoa(retryAfterSeconds(d)))
				writeRESTError(w, errThrottling, "throttled by fault injection", h.now())
				return
			}
		}
		if name == "request stream" {
			if n := r.PathValue("name"); !validName(n) {
				writeRESTError(w, errArgumentInvalid, nameError("stream", n), h.now())
				return
			}
		}
		if segs, err := splitPath(r.URL.EscapedPath()); err == nil {
			if msg := pathInputError(segs); msg != "" {
				writeRESTError(w, errArgumentInvalid, msg, h.now())
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		handle(h, w, r)
	})
}

// hubFor picks the hub for r, answering 404 (and recording it) when none fits.
func (s *Set) hubFor(w http.ResponseWriter, r *http.Request) (*Hub, bool) {
	local := ""
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		local = a.String()
	}
	h, ok := s.lookup(r.Host, local)
	if !ok {
		s.recordUnhandled(r.Host, "rest", r.Method+" "+r.URL.Path+": no such hub")
		writeRESTError(w, errNotFound, "no IoT hub "+r.Host, s.now())
	}
	return h, ok
}

func (s *Set) methodNotAllowed() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := s.hubFor(w, r)
		if !ok {
			return
		}
		writeRESTError(w, errMethodNotAllowed, r.Method+" is not supported on "+r.URL.Path, h.now())
	})
}

// NotFound answers a request for a hub path hubsim does not serve with
// 404 IotHubNotFound and records it as unhandled.
func (s *Set) NotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := s.hubFor(w, r); ok {
			h.notFound(w, r)
		}
	})
}

func (h *Hub) notFound(w http.ResponseWriter, r *http.Request) {
	h.set.recordUnhandled(h.host, "rest", r.Method+" "+r.URL.Path)
	writeRESTError(w, errNotFound, "hubsim does not serve "+r.Method+" "+r.URL.Path, h.now())
}

// splitPath splits an escaped path into unescaped segments, so an encoded
// "%2F" stays inside its segment.
func splitPath(escaped string) ([]string, error) {
	escaped = strings.Trim(escaped, "/")
	if escaped == "" {
		return nil, nil
	}
	parts := strings.Split(escaped, "/")
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil {
			return nil, err
		}
		parts[i] = u
	}
	return parts, nil
}

// The rights a route accepts, any one sufficing [MicrosoftDocs/azure-docs
// articles/iot-hub/authorize-sas.md, "Access control and permissions"]:
// RegistryRead reads the identity registry (devices, modules, registry
// statistics) and RegistryWrite changes it; ServiceConnect is the back
// end's: direct methods, device streams, cloud-to-device messages (purge),
// twin reads and updates, and queries. TestHubRoutes (package server) pins
// every route's rights.
var (
	rightsRead    = []string{sas.RightRegistryRead}
	rightsWrite   = []string{sas.RightRegistryWrite}
	rightsService = []string{sas.RightServiceConnect}
	// Queries also take RegistryRead [MicrosoftDocs/azure-docs
	// includes/iot-hub-howto-twin-shared-access-policy-text.md]. Twin reads
	// also taking RegistryRead, twin updates RegistryWrite, and service
	// statistics RegistryRead are hubsim's choice: no Azure page says
	// either way.
	rightsTwinRead  = []string{sas.RightServiceConnect, sas.RightRegistryRead}
	rightsTwinWrite = []string{sas.RightServiceConnect, sas.RightRegistryWrite}
)

// authorize checks "Authorization: SharedAccessSignature sr=<host>&…&skn=<policy>"
// against the hub's policies; any one of rights suffices.
func (h *Hub) authorize(r *http.Request, rights []string) error {
	tok := r.Header.Get("Authorization")
	if tok == "" {
		return errors.New("authorization header missing")
	}
	var firstErr error
	for _, right := range rights {
		_, err := sas.VerifyPolicy(tok, h.host, h.policies, right, h.now())
		if err == nil {
			return nil
		}
		if firstErr == nil || !errors.Is(err, sas.ErrPermission) {
			firstErr = err
		}
		if !errors.Is(err, sas.ErrPermission) {
			break // the token itself is bad; other rights will not help
		}
	}
	return firstErr
}

func (h *Hub) writeJSON(w http.ResponseWriter, status int, v any, etag string) {
	b, err := json.Marshal(v)
	if err != nil {
		writeRESTError(w, errServer, "encoding response: "+err.Error(), h.now())
		return
	}
	w.Header().Set("Content-Type", contentTypeJSON)
	if etag != "" {
		w.Header().Set("ETag", `"`+etag+`"`)
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (h *Hub) writeErr(w http.ResponseWriter, err error) {
	code := restCode(err)
	if code.Status == http.StatusTooManyRequests {
		h.counters.throttled.Add(1)
	}
	writeRESTError(w, code, err.Error(), h.now())
}

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		return nil, fmt.Errorf("%w: request body over %d bytes", ErrTooLarge, mbe.Limit)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reading body: %v", ErrInvalid, err)
	}
	return b, nil
}

func decodeJSON(r *http.Request, v any) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

func (h *Hub) restListDevices(w http.ResponseWriter, r *http.Request) {
	devs := h.ListDevices(r.Context())
	if top, err := strconv.Atoi(r.URL.Query().Get("top")); err == nil && top >= 0 && top < len(devs) {
		devs = devs[:top]
	}
	h.writeJSON(w, http.StatusOK, devs, "")
}

func (h *Hub) restGetDevice(w http.ResponseWriter, r *http.Request, id string) {
	d, err := h.GetDevice(r.Context(), id)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	h.writeJSON(w, http.StatusOK, d, d.ETag)
}

// restPutDevice creates (no If-Match) or updates (If-Match) a device, as
// azure-iothub's Registry.create / Registry.update do
// [Azure/azure-iot-sdk-node service/src/registry.ts].
func (h *Hub) restPutDevice(w http.ResponseWriter, r *http.Request, id string) {
	var d Device
	if err := decodeJSON(r, &d); err != nil {
		h.writeErr(w, err)
		return
	}
	if d.DeviceID == "" {
		d.DeviceID = id
	}
	if d.DeviceID != id {
		h.writeErr(w, fmt.Errorf("%w: deviceId %q in body does not match %q in path", ErrInvalid, d.DeviceID, id))
		return
	}
	var err error
	if ifm := r.Header.Get("If-Match"); ifm == "" {
		d, err = h.CreateDevice(r.Context(), d)
	} else {
		d, err = h.UpdateDevice(r.Context(), d, ifm)
	}
	if err != nil {
		h.writeErr(w, err)
		return
	}
	h.writeJSON(w, http.StatusOK, d, d.ETag)
}

func (h *Hub) restDeleteDevice(w http.ResponseWriter, r *http.Request, id string) {
	if err := h.DeleteDevice(r.Context(), id, r.Header.Get("If-Match")); err != nil {
		h.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Hub) restListModules(w http.ResponseWriter, r *http.Request, id string) {
	ms, err := h.ListModules(r.Context(), id)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	h.writeJSON(w, http.StatusOK, ms, "")
}

func (h *Hub) restGetModule(w http.ResponseWriter, r *http.Request, id, mid string) {
	m, err := h.GetModule(r.Context(), id, mid)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	h.writeJSON(w, http.StatusOK, m, m.ETag)
}

func (h *Hub) restPutModule(w http.ResponseWriter, r *http.Request, id, mid string) {
	var m Module
	if err := decodeJSON(r, &m); err != nil {
		h.writeErr(w, err)
		return
	}
	if m.DeviceID == "" {
		m.DeviceID = id
	}
	if m.ModuleID == "" {
		m.ModuleID = mid
	}
	if m.DeviceID != id || m.ModuleID != mid {
		h.writeErr(w, fmt.Errorf("%w: deviceId/moduleId in body do not match the path", ErrInvalid))
		return
	}
	var err error
	if ifm := r.Header.Get("If-Match"); ifm == "" {
		m, err = h.CreateModule(r.Context(), m)
	} else {
		m, err = h.UpdateModule(r.Context(), m, ifm)
	}
	if err != nil {
		h.writeErr(w, err)
		return
	}
	h.writeJSON(w, http.StatusOK, m, m.ETag)
}

func (h *Hub) restDeleteModule(w http.ResponseWriter, r *http.Request, id, mid string) {
	if err := h.DeleteModule(r.Context(), id, mid, r.Header.Get("If-Match")); err != nil {
		h.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Hub) restPurge(w http.ResponseWriter, r *http.Request, id string) {
	n, err := h.PurgeC2D(r.Context(), id)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	// [service.json definitions.PurgeMessageQueueResult]
	h.writeJSON(w, http.StatusOK, map[string]any{"totalMessagesPurged": n, "deviceId": id}, "")
}

func (h *Hub) restGetTwin(w http.ResponseWriter, r *http.Request, id, mid string) {
	t, err := h.GetTwin(r.Context(), id, mid)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	h.writeJSON(w, http.StatusOK, t, t.ETag)
}

// restChangeTwin serves PATCH (merge) and PUT (replace) of tags and desired
// properties; reported properties belong to the device and are refused.
func (h *Hub) restChangeTwin(w http.ResponseWriter, r *http.Request, id, mid string, replace bool) {
	b, err := readBody(r)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	doc, err := decodeObject(b)
	if err != nil {
		writeRESTError(w, errFormat, err.Error(), h.now())
		return
	}
	var p TwinPatch
	if v, ok := doc["tags"]; ok && v != nil {
		m, ok := v.(map[string]any)
		if !ok {
			h.writeErr(w, fmt.Errorf("%w: tags must be an object", ErrInvalid))
			return
		}
		p.Tags = m
	}
	if v, ok := doc["properties"]; ok && v != nil {
		props, ok := v.(map[string]any)
		if !ok {
			h.writeErr(w, fmt.Errorf("%w: properties must be an object", ErrInvalid))
			return
		}
		if rep, ok := props["reported"].(map[string]any); ok && len(withoutMeta(rep)) > 0 {
			h.writeErr(w, fmt.Errorf("%w: reported properties can only be set by the device", ErrInvalid))
			return
		}
		if d, ok := props["desired"]; ok && d != nil {
			dm, ok := d.(map[string]any)
			if !ok {
				h.writeErr(w, fmt.Errorf("%w: properties.desired must be an object", ErrInvalid))
				return
			}
			p.Desired = dm
		}
	}
	var t Twin
	if replace {
		t, err = h.ReplaceTwin(r.Context(), id, mid, p, r.Header.Get("If-Match"))
	} else {
		t, err = h.UpdateTwin(r.Context(), id, mid, p, r.Header.Get("If-Match"))
	}
	if err != nil {
		h.writeErr(w, err)
		return
	}
	h.writeJSON(w, http.StatusOK, t, t.ETag)
}

func withoutMeta(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if k != "$version" && k != "$metadata" {
			out[k] = v
		}
	}
	return out
}

// methodBody is the REST invoke body [service.json definitions.CloudToDeviceMethod].
type methodBody struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds *int            `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  *int            `json:"connectTimeoutInSeconds"`
}

func (h *Hub) restInvoke(w http.ResponseWriter, r *http.Request, id, mid string) {
	var mb methodBody
	if err := decodeJSON(r, &mb); err != nil {
		h.writeErr(w, err)
		return
	}
	req := MethodRequest{MethodName: mb.MethodName, Payload: mb.Payload}
	if mb.ResponseTimeoutInSeconds != nil {
		req.ResponseTimeoutInSeconds = *mb.ResponseTimeoutInSeconds
	}
	if mb.ConnectTimeoutInSeconds != nil {
		req.ConnectTimeoutInSeconds = *mb.ConnectTimeoutInSeconds
	}
	res, err := h.InvokeMethod(r.Context(), id, mid, req)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	// [service.json definitions.CloudToDeviceMethodResult]
	h.writeJSON(w, http.StatusOK, struct {
		Status  int             `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}{res.Status, res.Payload}, "")
}

func seconds(hdr string) (time.Duration, error) {
	if hdr == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(hdr))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: timeout header %q is not a number of seconds", ErrInvalid, hdr)
	}
	return time.Duration(n) * time.Second, nil
}

// restStream serves POST /twins/{id}[/modules/{m}]/streams/{name}
// [Azure/azure-iot-sdk-csharp iothub/service/src/AmqpServiceClient.cs@preview_2020-10-14],
// [Azure/azure-iot-sdk-node service/src/client.ts@streams-preview].
func (h *Hub) restStream(w http.ResponseWriter, r *http.Request, id, mid, name string) {
	ct, err := seconds(r.Header.Get(hdrStreamConnectTimeout))
	if err != nil {
		h.writeErr(w, err)
		return
	}
	rt, err := seconds(r.Header.Get(hdrStreamResponseTimeout))
	if err != nil {
		h.writeErr(w, err)
		return
	}
	// The request was authorized, so its token parses; skn names the policy.
	tok, _ := sas.Parse(r.Header.Get("Authorization"))
	res, err := h.RequestStream(r.Context(), StreamRequest{DeviceID: id, ModuleID: mid, Name: name, Policy: tok.KeyName,
		ConnectTimeout: ct, ResponseTimeout: rt})
	if errors.Is(err, ErrNoRelay) {
		writeRESTError(w, errorCode{503, "ServiceUnavailable", 503001}, err.Error(), h.now())
		return
	}
	if err != nil {
		h.writeErr(w, err)
		return
	}
	hd := w.Header()
	if res.Accepted {
		hd.Set(hdrStreamIsAccepted, streamAccepted)
		hd.Set(hdrStreamURL, res.URL)
		hd.Set(hdrStreamAuthToken, res.ServiceToken)
	} else {
		hd.Set(hdrStreamIsAccepted, streamRejected)
	}
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// queryBody is [service.json definitions.QuerySpecification].
type queryBody struct {
	Query string `json:"query"`
}

// restQuery serves POST /devices/query: the IoT Hub query language over
// device twins (FROM devices) and module twins (FROM devices.modules), paged
// with x-ms-max-item-count and x-ms-continuation; see package query for the
// grammar. Queries hubsim does not support answer 400 naming the construct
// and are recorded as unhandled; invalid ones answer 400.
func (h *Hub) restQuery(w http.ResponseWriter, r *http.Request) {
	var q queryBody
	if err := decodeJSON(r, &q); err != nil {
		h.writeErr(w, err)
		return
	}
	page := query.Page{Continuation: r.Header.Get(hdrContinuation)}
	if v := r.Header.Get(hdrMaxItemCount); v != "" {
		// 0 means the default page size, like an absent header.
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			h.writeErr(w, fmt.Errorf("%w: %s must be a non-negative number, got %q", ErrInvalid, hdrMaxItemCount, v))
			return
		}
		page.MaxItems = n
	}
	res, err := h.set.cfg.Twins.QueryTwins(r.Context(), h.host, q.Query, page)
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) && qe.Unsupported {
			h.set.recordUnhandled(h.host, "query", q.Query)
		}
		if errors.Is(err, query.ErrQuery) || errors.Is(err, query.ErrContinuation) {
			h.writeErr(w, fmt.Errorf("%w: %v", ErrInvalid, err))
			return
		}
		h.log.Warn("twin query failed", "err", err)
		writeRESTError(w, errServer, "query failed", h.now())
		return
	}
	if res.Continuation != "" {
		w.Header().Set(hdrContinuation, res.Continuation)
	}
	w.Header().Set(hdrItemType, res.ItemType)
	h.writeJSON(w, http.StatusOK, res.Items, "")
}

func (h *Hub) restDeviceStats(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	total, enabled := len(h.devices), 0
	for _, d := range h.devices {
		if d.status == StatusEnabled {
			enabled++
		}
	}
	h.mu.Unlock()
	// [service.json definitions.RegistryStatistics]
	h.writeJSON(w, http.StatusOK, map[string]int{"totalDeviceCount": total, "enabledDeviceCount": enabled,
		"disabledDeviceCount": total - enabled}, "")
}

func (h *Hub) restServiceStats(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	n := 0
	for _, d := range h.devices {
		if d.sess != nil {
			n++
		}
	}
	h.mu.Unlock()
	// [service.json definitions.ServiceStatistics]
	h.writeJSON(w, http.StatusOK, map[string]int{"connectedDeviceCount": n}, "")
}
