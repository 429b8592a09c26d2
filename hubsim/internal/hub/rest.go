package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/sas"
)

// maxBody bounds request bodies (the hub's own limits are far lower for
// twins, 32 KiB per side; this only protects hubsim).
const maxBody = 1 << 20

// ServeHTTP serves the hub service REST API for /devices…, /twins…,
// /statistics… and answers /messages… (AMQP-only in Azure) with 404. The hub
// is picked by the Host header (port stripped, case-insensitive), else the
// only hub, else the connection's local address.
// Paths and shapes: [Azure/azure-iot-sdk-node service/src/service.json (api-version 2020-09-30)];
// any api-version is accepted.
func (s *Set) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	local := ""
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		local = a.String()
	}
	h, ok := s.lookup(r.Host, local)
	if !ok {
		s.recordUnhandled(r.Host, "rest", r.Method+" "+r.URL.Path+": no such hub")
		writeRESTError(w, errNotFound, "no IoT hub "+r.Host, s.now())
		return
	}
	h.serveHTTP(w, r)
}

// route is a matched REST request.
type route struct {
	name     string   // for logs
	rights   []string // any one suffices
	handle   func(w http.ResponseWriter, r *http.Request)
	badInput string // non-empty: answer 400 with this message instead
}

func (h *Hub) serveHTTP(w http.ResponseWriter, r *http.Request) {
	segs, err := splitPath(r.URL.EscapedPath())
	if err != nil {
		writeRESTError(w, errArgumentInvalid, "malformed path", h.now())
		return
	}
	rt, allowed := h.match(r.Method, segs)
	if rt == nil {
		if allowed {
			writeRESTError(w, errMethodNotAllowed, r.Method+" is not supported on "+r.URL.Path, h.now())
			return
		}
		h.set.recordUnhandled(h.host, "rest", r.Method+" "+r.URL.Path)
		writeRESTError(w, errNotFound, "hubsim does not serve "+r.Method+" "+r.URL.Path, h.now())
		return
	}
	if err := h.authorize(r, rt.rights); err != nil {
		h.log.Info("rest unauthorized", "route", rt.name, "err", err)
		writeRESTError(w, errUnauthorized, err.Error(), h.now())
		return
	}
	if rt.badInput != "" {
		writeRESTError(w, errArgumentInvalid, rt.badInput, h.now())
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	rt.handle(w, r)
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

var (
	rightsRead    = []string{sas.RightRegistryRead}
	rightsWrite   = []string{sas.RightRegistryWrite}
	rightsService = []string{sas.RightServiceConnect}
	// Twin reads and updates and queries are served to ServiceConnect and to
	// the registry rights [doc: Control access to IoT Hub].
	rightsTwinRead  = []string{sas.RightServiceConnect, sas.RightRegistryRead}
	rightsTwinWrite = []string{sas.RightServiceConnect, sas.RightRegistryWrite}
)

// match finds the route for method and path segments. allowed reports a known
// path with an unsupported method.
func (h *Hub) match(method string, p []string) (rt *route, allowed bool) {
	type m = map[string]*route
	var table m
	switch {
	case len(p) == 1 && p[0] == "devices":
		table = m{"GET": {name: "list devices", rights: rightsRead, handle: h.restListDevices}}
	case len(p) == 2 && p[0] == "devices" && p[1] == "query":
		table = m{"POST": {name: "query", rights: rightsTwinRead, handle: h.restQuery}}
	case len(p) == 2 && p[0] == "devices":
		id := p[1]
		table = m{
			"GET":    {name: "get device", rights: rightsRead, handle: func(w http.ResponseWriter, r *http.Request) { h.restGetDevice(w, r, id) }},
			"PUT":    {name: "put device", rights: rightsWrite, handle: func(w http.ResponseWriter, r *http.Request) { h.restPutDevice(w, r, id) }},
			"DELETE": {name: "delete device", rights: rightsWrite, handle: func(w http.ResponseWriter, r *http.Request) { h.restDeleteDevice(w, r, id) }},
		}
	case len(p) == 3 && p[0] == "devices" && p[2] == "modules":
		id := p[1]
		table = m{"GET": {name: "list modules", rights: rightsRead, handle: func(w http.ResponseWriter, r *http.Request) { h.restListModules(w, r, id) }}}
	case len(p) == 3 && p[0] == "devices" && p[2] == "commands":
		id := p[1]
		table = m{"DELETE": {name: "purge c2d", rights: rightsService, handle: func(w http.ResponseWriter, r *http.Request) { h.restPurge(w, r, id) }}}
	case len(p) == 4 && p[0] == "devices" && p[2] == "modules":
		id, mid := p[1], p[3]
		table = m{
			"GET":    {name: "get module", rights: rightsRead, handle: func(w http.ResponseWriter, r *http.Request) { h.restGetModule(w, r, id, mid) }},
			"PUT":    {name: "put module", rights: rightsWrite, handle: func(w http.ResponseWriter, r *http.Request) { h.restPutModule(w, r, id, mid) }},
			"DELETE": {name: "delete module", rights: rightsWrite, handle: func(w http.ResponseWriter, r *http.Request) { h.restDeleteModule(w, r, id, mid) }},
		}
	case p0(p) == "twins" && (len(p) == 2 || len(p) == 4 && p[2] == "modules"):
		id, mid := p[1], ""
		if len(p) == 4 {
			mid = p[3]
		}
		table = m{
			"GET":   {name: "get twin", rights: rightsTwinRead, handle: func(w http.ResponseWriter, r *http.Request) { h.restGetTwin(w, r, id, mid) }},
			"PATCH": {name: "patch twin", rights: rightsTwinWrite, handle: func(w http.ResponseWriter, r *http.Request) { h.restChangeTwin(w, r, id, mid, false) }},
			"PUT":   {name: "replace twin", rights: rightsTwinWrite, handle: func(w http.ResponseWriter, r *http.Request) { h.restChangeTwin(w, r, id, mid, true) }},
		}
	case p0(p) == "twins" && (len(p) == 3 && p[2] == "methods" || len(p) == 5 && p[2] == "modules" && p[4] == "methods"):
		id, mid := p[1], ""
		if len(p) == 5 {
			mid = p[3]
		}
		table = m{"POST": {name: "invoke method", rights: rightsService, handle: func(w http.ResponseWriter, r *http.Request) { h.restInvoke(w, r, id, mid) }}}
	case p0(p) == "twins" && len(p) >= 4 && p[2] == "streams":
		id, name := p[1], strings.Join(p[3:], "/")
		table = m{"POST": h.streamRoute(id, "", name)}
	case p0(p) == "twins" && len(p) >= 6 && p[2] == "modules" && p[4] == "streams":
		id, mid, name := p[1], p[3], strings.Join(p[5:], "/")
		table = m{"POST": h.streamRoute(id, mid, name)}
	case len(p) == 2 && p[0] == "statistics" && p[1] == "devices":
		table = m{"GET": {name: "device statistics", rights: rightsRead, handle: h.restDeviceStats}}
	case len(p) == 2 && p[0] == "statistics" && p[1] == "service":
		table = m{"GET": {name: "service statistics", rights: rightsTwinRead, handle: h.restServiceStats}}
	default:
		return nil, false
	}
	rt = table[method]
	if rt != nil && rt.badInput == "" {
		rt.badInput = pathInputError(p)
	}
	return rt, rt == nil
}

func p0(p []string) string {
	if len(p) == 0 {
		return ""
	}
	return p[0]
}

func (h *Hub) streamRoute(id, mid, name string) *route {
	rt := &route{name: "request stream", rights: rightsService,
		handle: func(w http.ResponseWriter, r *http.Request) { h.restStream(w, r, id, mid, name) }}
	if !validName(name) {
		rt.badInput = nameError("stream", name)
	}
	return rt
}

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
	writeRESTError(w, restCode(err), err.Error(), h.now())
}

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
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

// restQuery serves POST /devices/query for "SELECT * FROM devices" (device
// twins) and "SELECT * FROM devices.modules" (module twins), paged with
// x-ms-max-item-count / x-ms-continuation. Other queries answer 400 and are
// recorded as unhandled.
func (h *Hub) restQuery(w http.ResponseWriter, r *http.Request) {
	var q queryBody
	if err := decodeJSON(r, &q); err != nil {
		h.writeErr(w, err)
		return
	}
	norm := strings.ToLower(strings.Join(strings.Fields(q.Query), " "))
	var modules bool
	switch norm {
	case "select * from devices":
	case "select * from devices.modules":
		modules = true
	default:
		h.set.recordUnhandled(h.host, "query", q.Query)
		h.writeErr(w, fmt.Errorf("%w: hubsim supports only SELECT * FROM devices and SELECT * FROM devices.modules", ErrInvalid))
		return
	}
	var twins []Twin
	h.mu.Lock()
	for _, d := range h.sortedDevicesLocked() {
		if !modules {
			twins = append(twins, d.twinLocked(d))
			continue
		}
		mids := make([]string, 0, len(d.modules))
		for k := range d.modules {
			mids = append(mids, k)
		}
		slices.Sort(mids)
		for _, k := range mids {
			twins = append(twins, d.modules[k].twinLocked(d))
		}
	}
	h.mu.Unlock()
	pageSize := 100
	if v := r.Header.Get(hdrMaxItemCount); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			pageSize = n
		}
	}
	start := 0
	if v := r.Header.Get(hdrContinuation); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > len(twins) {
			h.writeErr(w, fmt.Errorf("%w: bad continuation token", ErrInvalid))
			return
		}
		start = n
	}
	end := min(start+pageSize, len(twins))
	page := twins[start:end]
	if page == nil {
		page = []Twin{}
	}
	if end < len(twins) {
		w.Header().Set(hdrContinuation, strconv.Itoa(end))
	}
	w.Header().Set(hdrItemType, "twin")
	h.writeJSON(w, http.StatusOK, page, "")
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
