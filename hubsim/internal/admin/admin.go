package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/muxpath"
)

// Hubs is what the admin API needs from the IoT hubs (*hub.Set through
// sim's adapter).
type Hubs interface {
	// Stats lists every hub's counters in configuration order; the
	// elements are JSON objects (hub.HubStats).
	Stats() any
	// Has reports whether a hub has this host name (case-insensitive).
	Has(host string) bool
	// ServeEvents streams the hub's live telemetry tap to w until r's
	// context ends (newline-delimited JSON, query parameter buffer=n).
	ServeEvents(host string, w http.ResponseWriter, r *http.Request)
	// SendC2D queues a cloud-to-device message for the device.
	SendC2D(ctx context.Context, host, deviceID string, msg C2D) error
	// Disconnect drops the device's connection; false when it has none.
	Disconnect(host, deviceID string) bool
	// WriteError answers with err from the hub's Go API in Azure's shape.
	WriteError(w http.ResponseWriter, err error)
}

// C2D is a cloud-to-device message sent through the admin API.
type C2D struct {
	Body        []byte
	Properties  map[string]string
	ContentType string
}

// DPS is what the admin API needs from the provisioning service.
type DPS interface {
	// Stats are the device API counters (dps.Stats), a JSON object.
	Stats() any
}

// Relay is what the admin API needs from the streaming endpoint.
type Relay interface {
	// Endpoints are the streaming endpoint URLs of a hub (as
	// `az iot hub devicestream show` lists them).
	Endpoints(host string) []string
	// Streams lists the hub's streams that have not ended, oldest first.
	Streams(host string) []Stream
}

// Stream is a live stream as GET /hubsim/hubs/{host}/streams lists it.
type Stream struct {
	ID       string `json:"id"`
	DeviceID string `json:"deviceId"`
	ModuleID string `json:"moduleId,omitempty"`
	Name     string `json:"name"`
	// Policy is the shared access policy (skn) of the service request
	// that asked for the stream, as its DeviceStreams records carry it.
	Policy  string    `json:"skn"`
	Created time.Time `json:"created"`
	// Connected is when both sides were up; absent while one is missing.
	Connected      *time.Time `json:"connected,omitempty"`
	BytesToDevice  int64      `json:"bytesToDevice"`
	BytesToService int64      `json:"bytesToService"`
}

// Config wires the API to the simulator. Nil components answer 503.
type Config struct {
	Hubs   Hubs
	DPS    DPS
	Relay  Relay
	Faults *Faults
	// Metrics, if non-nil, serves GET /metrics behind the same credential.
	Metrics http.Handler
	// Unhandled, if non-nil, lists what clients sent that hubsim does not
	// serve (a JSON object: per component, oldest first).
	Unhandled func() any
	// Auth decides who may call the API; required.
	Auth   *Authorizer
	Logger *slog.Logger
	Now    func() time.Time
}

// API is hubsim's admin API.
type API struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	muxOnce sync.Once      // builds mux on the first ServeHTTP
	mux     *http.ServeMux // ServeHTTP's own routes
}

// New returns the admin API for cfg.
func New(cfg Config) (*API, error) {
	if cfg.Auth == nil {
		return nil, errors.New("admin: no Authorizer")
	}
	a := &API{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a, nil
}

// maxBody bounds admin request bodies (C2D messages are at most 64 KiB in
// Azure; fault documents are small).
const maxBody = 1 << 20

// Routes lists every admin endpoint: method and pattern, the credential it
// needs and what it does. README.md's table is generated from the same
// words; TestRoutesDocumented keeps them in step.
var Routes = []Route{
	{"GET", "/hubsim/hubs", "hubs: host name, devices, connected, dropped tap events, event taps, counters"},
	{"GET", "/hubsim/hubs/{host}/events", "live telemetry of a hub as JSON lines (`?buffer=n`), until the client leaves"},
	{"POST", "/hubsim/hubs/{host}/devices/{id}/messages", "queue a cloud-to-device message (body = payload, query = properties)"},
	{"POST", "/hubsim/hubs/{host}/devices/{id}/disconnect", "drop the device's connection (404 DeviceNotOnline if it has none)"},
	{"GET", "/hubsim/hubs/{host}/devicestream", "streaming endpoints, like `az iot hub devicestream show`"},
	{"GET", "/hubsim/hubs/{host}/streams", "live streams: id, device, module, stream name, requesting policy (`skn`), created, connected, bytes each way"},
	{"GET", "/hubsim/dps/stats", "DPS device API counters (requests, registrations, throttled, per second)"},
	{"GET", "/hubsim/unhandled", "what clients sent that hubsim does not serve: requests, hub topics and REST, DPS"},
	{"GET", "/hubsim/faults", "active faults"},
	{"POST", "/hubsim/faults", "switch a fault on (JSON Fault); answers it with its id"},
	{"DELETE", "/hubsim/faults/{id}", "switch one fault off"},
	{"DELETE", "/hubsim/faults", "switch every fault off"},
	{"GET", "/metrics", "Prometheus metrics (text format)"},
}

// Route is one admin endpoint.
type Route struct {
	Method, Pattern, What string
}

// RegisterRoutes puts the admin API on mux. Every route, and every other
// path under /hubsim, requires the admin credential first.
func (a *API) RegisterRoutes(mux *http.ServeMux) {
	h := map[string]http.HandlerFunc{
		"GET /hubsim/hubs":                                 a.hubs,
		"GET /hubsim/hubs/{host}/events":                   a.events,
		"POST /hubsim/hubs/{host}/devices/{id}/messages":   a.c2d,
		"POST /hubsim/hubs/{host}/devices/{id}/disconnect": a.disconnect,
		"GET /hubsim/hubs/{host}/devicestream":             a.devicestream,
		"GET /hubsim/hubs/{host}/streams":                  a.streams,
		"GET /hubsim/dps/stats":                            a.dpsStats,
		"GET /hubsim/unhandled":                            a.unhandled,
		"GET /hubsim/faults":                               a.listFaults,
		"POST /hubsim/faults":                              a.addFault,
		"DELETE /hubsim/faults/{id}":                       a.clearFault,
		"DELETE /hubsim/faults":                            a.clearFaults,
		"GET /metrics":                                     a.metrics,
	}
	for _, rt := range Routes {
		p := rt.Method + " " + rt.Pattern
		mux.Handle(p, a.authorized(h[p]))
	}
	mux.Handle("/hubsim", a.notFound())
	mux.Handle("/hubsim/", a.notFound())
}

// ServeHTTP serves the admin API on its own mux (standalone use, and the
// paths hubsim's mux does not take as they are). A path ServeMux would
// redirect (empty, "." or ".." segments) answers 404 after the credential
// check instead.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.muxOnce.Do(func() {
		a.mux = http.NewServeMux()
		a.RegisterRoutes(a.mux)
	})
	if !muxpath.Serves(r.URL.EscapedPath()) {
		a.notFound().ServeHTTP(w, r)
		return
	}
	a.mux.ServeHTTP(w, r)
}

func (a *API) notFound() http.Handler {
	return a.authorized(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errNotFound, "no such hubsim resource", a.now())
	})
}

func (a *API) authorized(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.cfg.Auth.Check(r); err != nil {
			a.log.Info("admin request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
			writeError(w, errUnauthorized, err.Error(), a.now())
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next(w, r)
	})
}

func (a *API) hubsReady(w http.ResponseWriter, r *http.Request, host string) bool {
	if a.cfg.Hubs == nil {
		writeError(w, errUnavailable, "hubsim has no hub component running", a.now())
		return false
	}
	if host != "" && !a.cfg.Hubs.Has(host) {
		writeError(w, errNotFound, fmt.Sprintf("no hub %q in this simulator", host), a.now())
		return false
	}
	return true
}

func (a *API) hubs(w http.ResponseWriter, r *http.Request) {
	if a.hubsReady(w, r, "") {
		writeJSON(w, http.StatusOK, a.cfg.Hubs.Stats())
	}
}

func (a *API) events(w http.ResponseWriter, r *http.Request) {
	host := r.PathValue("host")
	if a.hubsReady(w, r, host) {
		a.cfg.Hubs.ServeEvents(host, w, r)
	}
}

func (a *API) c2d(w http.ResponseWriter, r *http.Request) {
	host := r.PathValue("host")
	if !a.hubsReady(w, r, host) {
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, errArgumentInvalid, "reading body: "+err.Error(), a.now())
		return
	}
	props := map[string]string{}
	for k, v := range r.URL.Query() {
		if len(v) > 0 {
			props[k] = v[0]
		}
	}
	msg := C2D{Body: body, Properties: props, ContentType: r.Header.Get("Content-Type")}
	if err := a.cfg.Hubs.SendC2D(r.Context(), host, r.PathValue("id"), msg); err != nil {
		a.cfg.Hubs.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) disconnect(w http.ResponseWriter, r *http.Request) {
	host, id := r.PathValue("host"), r.PathValue("id")
	if !a.hubsReady(w, r, host) {
		return
	}
	if !a.cfg.Hubs.Disconnect(host, id) {
		writeError(w, errDeviceNotOnline, id+" is not connected", a.now())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) devicestream(w http.ResponseWriter, r *http.Request) {
	host := r.PathValue("host")
	if !a.hubsReady(w, r, host) {
		return
	}
	endpoints := []string{}
	if a.cfg.Relay != nil {
		if e := a.cfg.Relay.Endpoints(host); e != nil {
			endpoints = e
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"streamingEndpoints": endpoints})
}

func (a *API) streams(w http.ResponseWriter, r *http.Request) {
	host := r.PathValue("host")
	if !a.hubsReady(w, r, host) {
		return
	}
	if a.cfg.Relay == nil {
		writeError(w, errUnavailable, "hubsim has no streaming endpoint running", a.now())
		return
	}
	streams := a.cfg.Relay.Streams(host)
	if streams == nil {
		streams = []Stream{}
	}
	writeJSON(w, http.StatusOK, streams)
}

func (a *API) dpsStats(w http.ResponseWriter, r *http.Request) {
	if a.cfg.DPS == nil {
		writeError(w, errUnavailable, "hubsim has no DPS component running", a.now())
		return
	}
	writeJSON(w, http.StatusOK, a.cfg.DPS.Stats())
}

func (a *API) unhandled(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Unhandled == nil {
		writeJSON(w, http.StatusOK, map[string]any{})
		return
	}
	writeJSON(w, http.StatusOK, a.cfg.Unhandled())
}

func (a *API) metrics(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Metrics == nil {
		writeError(w, errNotFound, "metrics are not enabled", a.now())
		return
	}
	a.cfg.Metrics.ServeHTTP(w, r)
}

func (a *API) faultsReady(w http.ResponseWriter) bool {
	if a.cfg.Faults == nil {
		writeError(w, errUnavailable, "hubsim runs without fault injection", a.now())
		return false
	}
	return true
}

func (a *API) listFaults(w http.ResponseWriter, r *http.Request) {
	if a.faultsReady(w) {
		writeJSON(w, http.StatusOK, a.cfg.Faults.List())
	}
}

func (a *API) addFault(w http.ResponseWriter, r *http.Request) {
	if !a.faultsReady(w) {
		return
	}
	var f Fault
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		writeError(w, errArgumentInvalid, "fault: "+err.Error(), a.now())
		return
	}
	f, err := a.cfg.Faults.Add(f)
	if err != nil {
		writeError(w, errArgumentInvalid, err.Error(), a.now())
		return
	}
	a.log.Info("fault on", "id", f.ID, "kind", f.Kind, "hub", f.Hub, "device", f.Device)
	writeJSON(w, http.StatusCreated, f)
}

func (a *API) clearFault(w http.ResponseWriter, r *http.Request) {
	if !a.faultsReady(w) {
		return
	}
	if !a.cfg.Faults.Clear(r.PathValue("id")) {
		writeError(w, errNotFound, "no active fault "+r.PathValue("id"), a.now())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) clearFaults(w http.ResponseWriter, r *http.Request) {
	if a.faultsReady(w) {
		a.cfg.Faults.ClearAll()
		w.WriteHeader(http.StatusNoContent)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, errServer, "encoding response: "+err.Error(), time.Now())
		return
	}
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// errorCode is an Azure hub error: HTTP status and code name
// [Azure/azure-iot-sdk-csharp iothub/service/src/Common/Exceptions/ErrorCode.cs].
type errorCode struct {
	status int
	name   string
}

var (
	errUnauthorized    = errorCode{http.StatusUnauthorized, "IotHubUnauthorizedAccess"}
	errNotFound        = errorCode{http.StatusNotFound, "IotHubNotFound"}
	errDeviceNotOnline = errorCode{http.StatusNotFound, "DeviceNotOnline"}
	errArgumentInvalid = errorCode{http.StatusBadRequest, "ArgumentInvalid"}
	errUnavailable     = errorCode{http.StatusServiceUnavailable, "ServiceUnavailable"}
	errServer          = errorCode{http.StatusInternalServerError, "ServerError"}
)

const (
	contentTypeJSON = "application/json; charset=utf-8"
	// hdrErrorCode names the hub error code
	// [Azure/azure-iot-sdk-csharp iothub/service/src/Common/Exceptions/ExceptionHandlingHelper.cs].
	hdrErrorCode = "iothub-errorcode"
)

// writeError answers in the hub REST error shape: Message is
// "ErrorCode:<name>;<text>" [Azure/azure-iot-sdk-csharp
// iothub/service/src/Common/Exceptions/IotHubExceptionResult.cs].
func writeError(w http.ResponseWriter, code errorCode, msg string, now time.Time) {
	b, _ := json.Marshal(struct {
		Message          string `json:"Message"`
		ExceptionMessage string `json:"ExceptionMessage"`
	}{
		Message:          "ErrorCode:" + code.name + ";" + strings.ReplaceAll(msg, ";", ","),
		ExceptionMessage: fmt.Sprintf("Tracking ID:hubsim-%d-TimeStamp:%s", now.UnixNano(), now.UTC().Format("01/02/2006 15:04:05")),
	})
	w.Header().Set("Content-Type", contentTypeJSON)
	w.Header().Set(hdrErrorCode, code.name)
	if code.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hubsim"`)
	}
	w.WriteHeader(code.status)
	_, _ = w.Write(b)
}
