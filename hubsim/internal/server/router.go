package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/muxpath"
)

// Route names a destination of the router.
type Route string

// Routes.
const (
	RouteHealth    Route = "health"
	RouteBroker    Route = "broker"
	RouteRelay     Route = "relay"
	RouteDPS       Route = "dps"
	RouteHub       Route = "hub"
	RouteAdmin     Route = "admin"
	RouteUnhandled Route = "unhandled"
)

// Path segments. MQTT over WebSocket shares one path for hub and DPS
// [Azure/azure-iot-sdk-node device/transport/mqtt/src/mqtt_ws.ts];
// DPS device paths are /{idScope}/registrations/… and DPS service paths start
// with enrollments, enrollmentGroups or registrations
// [Azure/azure-rest-api-specs specification/deviceprovisioningservices/data-plane];
// hub service and device HTTP paths start with devices, twins, messages,
// statistics, configurations or jobs [Azure/azure-rest-api-specs specification/iothub/data-plane].
const (
	pathHealth       = "/healthz"
	pathWebSocket    = "/$iothub/websocket"
	segBridges       = "bridges"
	segRegistrations = "registrations"
	segAdmin         = "hubsim"
)

var (
	dpsServiceSegs = []string{"enrollments", "enrollmentGroups", "registrations"}
	hubSegs        = []string{"devices", "twins", "messages", "statistics", "configurations", "jobs"}
)

// Classify returns the route for a request path (already percent-decoded).
func Classify(path string) Route {
	if path == pathHealth {
		return RouteHealth
	}
	if path == pathWebSocket {
		return RouteBroker
	}
	first, rest, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	second, _, _ := strings.Cut(rest, "/")
	switch {
	case first == segBridges:
		return RouteRelay
	case first == segAdmin:
		return RouteAdmin
	case containsFold(dpsServiceSegs, first):
		return RouteDPS
	case first != "" && strings.EqualFold(second, segRegistrations):
		return RouteDPS
	case containsFold(hubSegs, first):
		return RouteHub
	}
	return RouteUnhandled
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// Error shapes.
const (
	// contentTypeJSON goes on every response with a body: the SDKs discard
	// bodies of any other type (PROTOCOL.md §12)
	// [Azure/azure-iot-sdk-node common/transport/http/src/rest_api_client.ts].
	contentTypeJSON = "application/json; charset=utf-8"
	// hubErrorHeader carries the hub's error code name
	// [Azure/azure-iot-sdk-csharp iothub/service/src/Common/Exceptions/ExceptionHandlingHelper.cs].
	hubErrorHeader = "iothub-errorcode"
	// dpsErrorHeader carries DPS's numeric error code
	// [Azure/azure-rest-api-specs specification/deviceprovisioningservices/data-plane/DeviceProvisioningServices/device/models.tsp].
	dpsErrorHeader = "x-ms-error-code"
	// Hub error code names [Azure/azure-iot-sdk-csharp iothub/service/src/Common/Exceptions/ErrorCode.cs];
	// the hub component uses the same name for unknown routes.
	hubCodeNotFound           = "IotHubNotFound"
	hubCodeServiceUnavailable = "ServiceUnavailable"
	// DPS numeric codes follow httpStatus*1000+n (PROTOCOL.md §2, unverified).
	dpsCodeNotFound           = 404000
	dpsCodeServiceUnavailable = 503000
)

// hubError is the hub REST error body: Message is "ErrorCode:<name>;<text>"
// [Azure/azure-iot-sdk-csharp iothub/service/src/Common/Exceptions/IotHubExceptionResult.cs].
type hubError struct {
	Message          string `json:"Message"`
	ExceptionMessage string `json:"ExceptionMessage"`
}

// dpsError is ProvisioningServiceErrorDetails
// [Azure/azure-rest-api-specs .../DeviceProvisioningServices/device/models.tsp].
type dpsError struct {
	ErrorCode    int    `json:"errorCode"`
	TrackingID   string `json:"trackingId"`
	Message      string `json:"message"`
	TimestampUTC string `json:"timestampUtc"`
}

func writeHubError(w http.ResponseWriter, status int, code, msg string, now time.Time) {
	body, _ := json.Marshal(hubError{
		Message:          "ErrorCode:" + code + ";" + strings.ReplaceAll(msg, ";", ","),
		ExceptionMessage: fmt.Sprintf("Tracking ID:hubsim-%d-TimeStamp:%s", now.UnixNano(), now.UTC().Format("01/02/2006 15:04:05")),
	})
	w.Header().Set(hubErrorHeader, code)
	writeJSON(w, status, body)
}

func writeDPSError(w http.ResponseWriter, status, code int, msg string, now time.Time) {
	body, _ := json.Marshal(dpsError{
		ErrorCode:    code,
		TrackingID:   fmt.Sprintf("hubsim-%d", now.UnixNano()),
		Message:      msg,
		TimestampUTC: now.UTC().Format(time.RFC3339Nano),
	})
	w.Header().Set(dpsErrorHeader, fmt.Sprint(code))
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// RouteRegistrar is a component that puts its own Go 1.22 method+path
// patterns on hubsim's one http.ServeMux (hub.Set, dps.HTTPAPI,
// admin.API). A component that is a plain http.Handler is mounted under
// its path prefixes instead.
type RouteRegistrar interface {
	RegisterRoutes(mux *http.ServeMux)
}

// router dispatches requests to the components through one http.ServeMux.
// The hubs, DPS and the admin API register method+path patterns (each hub
// and DPS route declares the SAS right it needs next to its pattern; the
// admin API takes one credential for all); relay, broker and health are
// fixed paths. Paths the mux cannot take as they are (not
// clean: it would redirect) and paths no pattern names go through
// Classify to the component's own handler, which answers in its error
// shape.
//
// DPS's routes are patterns like the others (dps.HTTPAPI): the device
// routes carry each configured ID scope as a literal first segment
// (PUT /0ne00000001/registrations/{id}/register), because a wildcard first
// segment (POST /{idScope}/registrations/{id}) matches the same paths as
// POST /enrollments/{id}/attestationmechanism and
// POST /registrations/{id}/query with neither more specific, which
// ServeMux refuses, and overlaps the hubs' routes. Host-qualified patterns
// do not separate them: DPS's global endpoint and service host may be one
// name or address, shared with a hub. What the patterns do not name —
// a scope hubsim does not have, a collection name or scope in another
// case — reaches DPS's fallback through Classify (or DPS's own subtree
// patterns), which rewrites the spellings DPS accepts to the registered
// ones and answers the rest with DPS's 404. A scope that would collide
// with another component's patterns makes Start fail with the conflict.
type router struct {
	c        Components
	now      func() time.Time
	record   func(method, path string)
	inflight *sync.WaitGroup // counts handler calls; Server.Close waits for it
	mux      *http.ServeMux
}

func newRouterFor(c Components, now func() time.Time, record func(method, path string), inflight *sync.WaitGroup) (*router, error) {
	rt := &router{c: c, now: now, record: record, inflight: inflight}
	var err error
	if rt.mux, err = rt.buildMux(); err != nil {
		return nil, err
	}
	return rt, nil
}

// buildMux registers every route. ServeMux panics on two patterns that
// overlap with neither more specific; that comes back as an error (a DPS
// ID scope named like a hub collection, say).
func (rt *router) buildMux() (mux *http.ServeMux, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("server: registering routes: %v", p)
		}
	}()
	mux = http.NewServeMux()
	mux.HandleFunc(pathHealth, rt.serveHealth)
	mux.Handle(pathWebSocket, rt.handlerFor(RouteBroker))
	for _, p := range []string{"/" + segBridges, "/" + segBridges + "/"} {
		mux.Handle(p, rt.handlerFor(RouteRelay))
	}
	mount := func(route Route, h http.Handler, prefixes []string) {
		if reg, ok := h.(RouteRegistrar); ok {
			reg.RegisterRoutes(mux)
			return
		}
		for _, p := range prefixes {
			mux.Handle("/"+p, rt.handlerFor(route))
			mux.Handle("/"+p+"/", rt.handlerFor(route))
		}
	}
	mount(RouteAdmin, rt.c.Admin, []string{segAdmin})
	mount(RouteHub, rt.c.Hub, hubSegs)
	mount(RouteDPS, rt.c.DPS, dpsServiceSegs)
	mux.HandleFunc("/", rt.serveClassified)
	return mux, nil
}

func (rt *router) serveHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
}

// handlerFor is the component serving route, or a 503 in the route's
// error shape when that component is not running.
func (rt *router) handlerFor(route Route) http.Handler {
	var h http.Handler
	switch route {
	case RouteBroker:
		if rt.c.Broker != nil {
			h = rt.c.Broker
		}
	case RouteRelay:
		h = rt.c.Relay
	case RouteDPS:
		h = rt.c.DPS
	case RouteHub:
		h = rt.c.Hub
	case RouteAdmin:
		h = rt.c.Admin
	}
	if h != nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		msg := fmt.Sprintf("hubsim has no %s component running", route)
		if route == RouteDPS {
			writeDPSError(w, http.StatusServiceUnavailable, dpsCodeServiceUnavailable, msg, rt.now())
		} else {
			writeHubError(w, http.StatusServiceUnavailable, hubCodeServiceUnavailable, msg, rt.now())
		}
	})
}

// serveClassified routes what the mux's patterns do not name.
func (rt *router) serveClassified(w http.ResponseWriter, r *http.Request) {
	switch route := Classify(r.URL.Path); route {
	case RouteHealth:
		rt.serveHealth(w, r)
	case RouteUnhandled:
		rt.record(r.Method, r.URL.Path)
		writeHubError(w, http.StatusNotFound, hubCodeNotFound,
			fmt.Sprintf("hubsim does not serve %s %s", r.Method, r.URL.Path), rt.now())
	default:
		rt.handlerFor(route).ServeHTTP(w, r)
	}
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rt.inflight != nil {
		rt.inflight.Add(1)
		defer rt.inflight.Done()
	}
	jw := &jsonWriter{ResponseWriter: w}
	if route := Classify(r.URL.Path); route == RouteHub || route == RouteAdmin {
		// These APIs ignore trailing slashes, as they did before the mux:
		// the Node registry client lists devices with GET /devices/.
		r = muxpath.TrimTrailingSlash(r)
	}
	if !muxpath.Serves(r.URL.EscapedPath()) {
		rt.serveClassified(jw, r)
		return
	}
	rt.mux.ServeHTTP(jw, r)
}

// jsonWriter sets Content-Type: application/json on every response that
// may carry a body and has no Content-Type yet. It passes Hijack and Flush
// through, so WebSocket upgrades and streaming work.
type jsonWriter struct {
	http.ResponseWriter
	wroteHeader bool
}

func (w *jsonWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.wroteHeader = true
		if bodyAllowed(code) && w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", contentTypeJSON)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *jsonWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

func (w *jsonWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if !w.wroteHeader {
			w.WriteHeader(http.StatusOK)
		}
		f.Flush()
	}
}

func (w *jsonWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("server: connection cannot be hijacked")
	}
	w.wroteHeader = true // the handler writes its own response now
	return h.Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *jsonWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}
