package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/admin"
)

// view is what every template gets.
type view struct {
	Title, Nav string
	CSRF       string
	Next       string
	Error      string
	Flash      string

	Hubs     []hubStat
	Totals   Sample
	Rates    rates
	Charts   []chart
	DPS      []kv
	Streams  *StreamStats
	Devices  []Device
	Matched  int
	Shown    int
	Hub      string
	Query    string
	DeviceID string
	Twin     string
	Enabled  bool
	Online   bool
	Raw      []string // query results without a device id (projections)

	OpenStreams []openRow
	History     []historyRow

	Enrollments   []enrollmentRow
	Groups        []enrollmentRow
	Registrations []registrationRow
	RegCount      int
	QuotaLimit    int
	QuotaWindow   time.Duration
	QuotaPeak     int64
	Faults        []admin.Fault
	Kinds         []admin.Kind
	Missing       string
}

type hubStat struct {
	HostName  string `json:"hostName"`
	Devices   int    `json:"devices"`
	Connected int    `json:"connected"`
	Counters  struct {
		Connects    int64 `json:"connects"`
		Disconnects int64 `json:"disconnects"`
		MessagesIn  int64 `json:"messagesIn"`
		MessagesOut int64 `json:"messagesOut"`
		MethodCalls int64 `json:"methodCalls"`
		C2DSent     int64 `json:"c2dSent"`
		Throttled   int64 `json:"throttled"`
	} `json:"counters"`
}

type kv struct {
	Key   string
	Value string
}

// Sample is one reading of the counters the overview charts.
type Sample struct {
	Time          time.Time
	Devices       int
	Connected     int
	MessagesIn    int64
	StreamsOpen   int64
	StreamsTotal  int64
	Registrations int64
	DPSThrottled  int64
}

type rates struct{ Messages, Registrations, Throttled float64 }

type chart struct {
	Name, Label, Points, Last string
}

var templateFuncs = template.FuncMap{
	"since": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"pathEscape": url.PathEscape,
	"dur": func(d admin.Duration) string {
		if d == 0 {
			return ""
		}
		return time.Duration(d).String()
	},
}

func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("base").Funcs(templateFuncs).ParseFS(assets, "assets/layout.html")
	if err != nil {
		return nil, fmt.Errorf("ui: templates: %w", err)
	}
	names, err := fs.Glob(assets, "assets/page_*.html")
	if err != nil {
		return nil, fmt.Errorf("ui: templates: %w", err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		t, err := template.Must(base.Clone()).ParseFS(assets, n)
		if err != nil {
			return nil, fmt.Errorf("ui: template %s: %w", n, err)
		}
		out[strings.TrimSuffix(strings.TrimPrefix(n, "assets/page_"), ".html")] = t
	}
	return out, nil
}

// render writes page name; the template runs into a buffer first so an
// error answers 500 instead of half a page.
func (u *UI) render(w http.ResponseWriter, name string, v *view) {
	var b bytes.Buffer
	if err := u.pages[name].ExecuteTemplate(&b, "layout", v); err != nil {
		u.log.Error("dashboard template", "page", name, "err", err)
		http.Error(w, "template error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

func (u *UI) viewFor(s *session, title, nav string) *view {
	return &view{Title: title, Nav: nav, CSRF: s.csrf}
}

// hubStats decodes what admin.Hubs.Stats serves.
func (u *UI) hubStats() []hubStat {
	if u.cfg.Hubs == nil {
		return nil
	}
	b, err := json.Marshal(u.cfg.Hubs.Stats())
	if err != nil {
		return nil
	}
	var out []hubStat
	_ = json.Unmarshal(b, &out)
	return out
}

// dpsStats decodes what admin.DPS.Stats serves: its number fields.
func (u *UI) dpsStats() map[string]json.RawMessage {
	if u.cfg.DPS == nil {
		return nil
	}
	b, err := json.Marshal(u.cfg.DPS.Stats())
	if err != nil {
		return nil
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	return m
}

func jsonInt(m map[string]json.RawMessage, key string) int64 {
	var n int64
	_ = json.Unmarshal(m[key], &n)
	return n
}

// sample reads the counters once and keeps the reading for the charts.
func (u *UI) sample() Sample {
	s := Sample{Time: u.now()}
	for _, h := range u.hubStats() {
		s.Devices += h.Devices
		s.Connected += h.Connected
		s.MessagesIn += h.Counters.MessagesIn
	}
	if u.cfg.Streams != nil {
		st := u.cfg.Streams.StreamStats()
		s.StreamsOpen, s.StreamsTotal = st.Open, st.Total
	}
	if d := u.dpsStats(); d != nil {
		s.Registrations = jsonInt(d, "Registrations")
		s.DPSThrottled = jsonInt(d, "Throttled") + jsonInt(d, "FaultThrottle")
	}
	u.mu.Lock()
	u.samples = append(u.samples, s)
	if over := len(u.samples) - u.cfg.History; over > 0 {
		u.samples = append(u.samples[:0], u.samples[over:]...)
	}
	u.mu.Unlock()
	return s
}

func (u *UI) history() []Sample {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Sample(nil), u.samples...)
}

// overviewData is the overview's numbers and charts, for the page and
// for the live feed.
type overviewData struct {
	Totals Sample
	Rates  rates
	Charts []chart
}

func (u *UI) overviewData() overviewData {
	hist := u.history()
	cur := Sample{Time: u.now()}
	if len(hist) == 0 {
		hist = []Sample{u.sample()}
	}
	cur = hist[len(hist)-1]
	var r rates
	if n := len(hist); n >= 2 {
		a, b := hist[n-2], hist[n-1]
		if dt := b.Time.Sub(a.Time).Seconds(); dt > 0 {
			r = rates{Messages: float64(b.MessagesIn-a.MessagesIn) / dt,
				Registrations: float64(b.Registrations-a.Registrations) / dt,
				Throttled:     float64(b.DPSThrottled-a.DPSThrottled) / dt}
		}
	}
	return overviewData{Totals: cur, Rates: r, Charts: charts(hist)}
}

// charts turns the history into polylines in a 300×60 box: connected
// devices, messages/s, streams open, DPS registrations/s, DPS 429s/s.
func charts(hist []Sample) []chart {
	series := []struct {
		name, label string
		v           func(i int) float64
	}{
		{"connected", "devices connected", func(i int) float64 { return float64(hist[i].Connected) }},
		{"messages", "messages/s", func(i int) float64 { return perSecond(hist, i, func(s Sample) int64 { return s.MessagesIn }) }},
		{"streams", "streams open", func(i int) float64 { return float64(hist[i].StreamsOpen) }},
		{"registrations", "DPS registrations/s", func(i int) float64 {
			return perSecond(hist, i, func(s Sample) int64 { return s.Registrations })
		}},
		{"throttled", "DPS 429s/s", func(i int) float64 { return perSecond(hist, i, func(s Sample) int64 { return s.DPSThrottled }) }},
	}
	out := make([]chart, 0, len(series))
	for _, sr := range series {
		vals := make([]float64, len(hist))
		top := 1.0
		for i := range hist {
			vals[i] = sr.v(i)
			top = max(top, vals[i])
		}
		var pts strings.Builder
		step := 300.0
		if len(vals) > 1 {
			step = 300.0 / float64(len(vals)-1)
		}
		for i, v := range vals {
			fmt.Fprintf(&pts, "%.1f,%.1f ", float64(i)*step, 58-56*v/top)
		}
		last := 0.0
		if len(vals) > 0 {
			last = vals[len(vals)-1]
		}
		out = append(out, chart{Name: sr.name, Label: sr.label, Points: strings.TrimSpace(pts.String()),
			Last: strconv.FormatFloat(last, 'f', -1, 64) + " (max " + strconv.FormatFloat(top, 'f', 1, 64) + ")"})
	}
	return out
}

func perSecond(h []Sample, i int, f func(Sample) int64) float64 {
	if i == 0 {
		return 0
	}
	dt := h[i].Time.Sub(h[i-1].Time).Seconds()
	if dt <= 0 {
		return 0
	}
	return float64(f(h[i])-f(h[i-1])) / dt
}

func (u *UI) overview(w http.ResponseWriter, r *http.Request, s *session) {
	v := u.viewFor(s, "Overview", "overview")
	v.Hubs = u.hubStats()
	d := u.overviewData()
	v.Totals, v.Rates, v.Charts = d.Totals, d.Rates, d.Charts
	u.render(w, "overview", v)
}

// live feeds the overview's numbers and charts as server-sent events, one
// per sample period, until the browser leaves.
func (u *UI) live(w http.ResponseWriter, r *http.Request, s *session) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	t := time.NewTicker(u.cfg.SampleEvery)
	defer t.Stop()
	for {
		d := u.overviewData()
		msg := map[string]any{
			"devices": d.Totals.Devices, "connected": d.Totals.Connected, "streamsOpen": d.Totals.StreamsOpen,
			"streamsTotal": d.Totals.StreamsTotal, "registrations": d.Totals.Registrations, "dpsThrottled": d.Totals.DPSThrottled,
			"messagesPerSecond": strconv.FormatFloat(d.Rates.Messages, 'f', 1, 64),
		}
		pts := map[string]string{}
		for _, c := range d.Charts {
			pts[c.Name] = c.Points
		}
		msg["charts"] = pts
		var hubs [][]any
		for _, h := range u.hubStats() {
			c := h.Counters
			hubs = append(hubs, []any{h.HostName, h.Devices, h.Connected, c.Connects, c.MessagesIn, c.MessagesOut,
				c.MethodCalls, c.C2DSent, c.Throttled})
		}
		msg["hubs"] = hubs
		b, _ := json.Marshal(msg)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

const deviceListLimit = 200

func (u *UI) devices(w http.ResponseWriter, r *http.Request, s *session) {
	v := u.viewFor(s, "Devices", "devices")
	v.Hubs = u.hubStats()
	v.Hub, v.Query = r.URL.Query().Get("hub"), r.URL.Query().Get("q")
	if v.Hub == "" && len(v.Hubs) > 0 {
		v.Hub = v.Hubs[0].HostName
	}
	switch {
	case u.cfg.Devices == nil:
		v.Missing = "device registry"
	case v.Hub == "":
	case isQuery(v.Query):
		u.queryDevices(r, v)
	default:
		devs, n, err := u.cfg.Devices.List(r.Context(), v.Hub, v.Query, deviceListLimit)
		if err != nil {
			v.Error = err.Error()
		}
		v.Devices, v.Matched, v.Shown = devs, n, len(devs)
	}
	u.render(w, "devices", v)
}

// isQuery tells an IoT Hub query from a device id fragment.
func isQuery(s string) bool {
	f := strings.Fields(s)
	return len(f) > 1 && strings.EqualFold(f[0], "select")
}

// queryDevices runs the search box as an IoT Hub query: result twins
// become device rows; projections without a device id are listed as JSON.
func (u *UI) queryDevices(r *http.Request, v *view) {
	items, err := u.cfg.Devices.Query(r.Context(), v.Hub, v.Query, deviceListLimit)
	if err != nil {
		v.Error = "query: " + err.Error()
		return
	}
	all, _, err := u.cfg.Devices.List(r.Context(), v.Hub, "", 1<<30)
	if err != nil {
		v.Error = err.Error()
		return
	}
	byID := make(map[string]Device, len(all))
	for _, d := range all {
		byID[d.ID] = d
	}
	seen := map[string]bool{}
	for _, it := range items {
		var doc struct {
			DeviceID string `json:"deviceId"`
		}
		d, ok := Device{}, false
		if json.Unmarshal(it, &doc) == nil && doc.DeviceID != "" {
			d, ok = byID[doc.DeviceID]
		}
		switch {
		case ok && !seen[d.ID]:
			seen[d.ID] = true
			v.Devices = append(v.Devices, d)
		case !ok:
			v.Raw = append(v.Raw, string(it))
		}
	}
	v.Matched, v.Shown = len(items), len(items)
}

func (u *UI) method(w http.ResponseWriter, r *http.Request, s *session) {
	if u.cfg.Devices == nil {
		u.actionError(w, http.StatusServiceUnavailable, "no device registry")
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("method"))
	payload := json.RawMessage(strings.TrimSpace(r.PostForm.Get("payload")))
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	if name == "" || !json.Valid(payload) {
		u.actionError(w, http.StatusBadRequest, "a method needs a name and a JSON payload (or none)")
		return
	}
	timeout := 10 * time.Second
	if t := strings.TrimSpace(r.PostForm.Get("timeout")); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 5 || n > 300 {
			u.actionError(w, http.StatusBadRequest, "timeout: whole seconds from 5 to 300")
			return
		}
		timeout = time.Duration(n) * time.Second
	}
	status, out, err := u.cfg.Devices.InvokeMethod(r.Context(), r.PathValue("host"), r.PathValue("id"), name, payload, timeout)
	if err != nil {
		afterAction(w, r, "method "+name+" failed: "+err.Error())
		return
	}
	afterAction(w, r, fmt.Sprintf("method %s answered %d: %s", name, status, out))
}

func (u *UI) device(w http.ResponseWriter, r *http.Request, s *session) {
	host, id := r.PathValue("host"), r.PathValue("id")
	v := u.viewFor(s, "Device "+id, "devices")
	v.Hub, v.DeviceID = host, id
	v.Flash = r.URL.Query().Get("done")
	if u.cfg.Devices == nil {
		v.Missing = "device registry"
		u.render(w, "device", v)
		return
	}
	devs, _, err := u.cfg.Devices.List(r.Context(), host, id, deviceListLimit)
	found := false
	for _, d := range devs {
		if d.ID == id {
			found, v.Enabled, v.Online = true, d.Enabled, d.Connected
		}
	}
	if err != nil || !found {
		w.WriteHeader(http.StatusNotFound)
		v.Error = "no device " + id + " on " + host
		u.render(w, "device", v)
		return
	}
	twin, err := u.cfg.Devices.Twin(r.Context(), host, id)
	if err != nil {
		v.Error = err.Error()
	} else {
		var b bytes.Buffer
		_ = json.Indent(&b, twin, "", "  ")
		v.Twin = b.String()
	}
	u.render(w, "device", v)
}

// afterAction sends the browser back to the device page saying what
// happened (POST-redirect-GET).
func afterAction(w http.ResponseWriter, r *http.Request, msg string) {
	http.Redirect(w, r, Prefix+"devices/"+url.PathEscape(r.PathValue("host"))+"/"+url.PathEscape(r.PathValue("id"))+
		"?done="+url.QueryEscape(msg), http.StatusSeeOther)
}

func (u *UI) actionError(w http.ResponseWriter, status int, msg string) {
	http.Error(w, msg, status)
}

func (u *UI) desired(w http.ResponseWriter, r *http.Request, s *session) {
	if u.cfg.Devices == nil {
		u.actionError(w, http.StatusServiceUnavailable, "no device registry")
		return
	}
	var patch map[string]any
	raw := r.PostForm.Get("patch")
	if name := strings.TrimSpace(r.PostForm.Get("name")); name != "" {
		var val any
		if err := json.Unmarshal([]byte(r.PostForm.Get("value")), &val); err != nil {
			val = r.PostForm.Get("value") // not JSON: a string
		}
		patch = map[string]any{name: val}
	} else if err := json.Unmarshal([]byte(raw), &patch); err != nil || patch == nil {
		u.actionError(w, http.StatusBadRequest, "the desired patch must be a JSON object")
		return
	}
	if err := u.cfg.Devices.UpdateDesired(r.Context(), r.PathValue("host"), r.PathValue("id"), patch); err != nil {
		u.actionError(w, http.StatusBadRequest, "desired update failed: "+err.Error())
		return
	}
	afterAction(w, r, "desired properties updated")
}

func (u *UI) c2d(w http.ResponseWriter, r *http.Request, s *session) {
	if u.cfg.Hubs == nil {
		u.actionError(w, http.StatusServiceUnavailable, "no hub running")
		return
	}
	m := admin.C2D{Body: []byte(r.PostForm.Get("body")), ContentType: r.PostForm.Get("contentType")}
	if p := strings.TrimSpace(r.PostForm.Get("properties")); p != "" {
		q, err := url.ParseQuery(p)
		if err != nil {
			u.actionError(w, http.StatusBadRequest, "properties: "+err.Error())
			return
		}
		m.Properties = map[string]string{}
		for k := range q {
			m.Properties[k] = q.Get(k)
		}
	}
	if err := u.cfg.Hubs.SendC2D(r.Context(), r.PathValue("host"), r.PathValue("id"), m); err != nil {
		u.actionError(w, http.StatusBadRequest, "cloud-to-device message refused: "+err.Error())
		return
	}
	afterAction(w, r, "cloud-to-device message queued")
}

func (u *UI) disconnect(w http.ResponseWriter, r *http.Request, s *session) {
	if u.cfg.Hubs == nil {
		u.actionError(w, http.StatusServiceUnavailable, "no hub running")
		return
	}
	if !u.cfg.Hubs.Disconnect(r.PathValue("host"), r.PathValue("id")) {
		afterAction(w, r, "the device was not connected")
		return
	}
	afterAction(w, r, "connection dropped")
}

func (u *UI) status(w http.ResponseWriter, r *http.Request, s *session) {
	if u.cfg.Devices == nil {
		u.actionError(w, http.StatusServiceUnavailable, "no device registry")
		return
	}
	enable := r.PostForm.Get("enabled") == "true"
	if err := u.cfg.Devices.SetEnabled(r.Context(), r.PathValue("host"), r.PathValue("id"), enable); err != nil {
		u.actionError(w, http.StatusBadRequest, "status change failed: "+err.Error())
		return
	}
	if enable {
		afterAction(w, r, "device enabled")
	} else {
		afterAction(w, r, "device disabled")
	}
}

// enrollmentRow is what the DPS page shows of an individual enrollment or
// a group (never its attestation).
type enrollmentRow struct {
	RegistrationID     string   `json:"registrationId"`
	EnrollmentGroupID  string   `json:"enrollmentGroupId"`
	DeviceID           string   `json:"deviceId"`
	ProvisioningStatus string   `json:"provisioningStatus"`
	AllocationPolicy   string   `json:"allocationPolicy"`
	IoTHubs            []string `json:"iotHubs"`
	IoTHubHostName     string   `json:"iotHubHostName"`
	ReprovisionPolicy  *struct {
		UpdateHubAssignment *bool `json:"updateHubAssignment"`
		MigrateDeviceData   *bool `json:"migrateDeviceData"`
	} `json:"reprovisionPolicy"`
}

// Reprovision says what a reprovision with a new hub does; an absent
// policy or field is true, as in Azure.
func (e enrollmentRow) Reprovision() string {
	update, migrate := true, true
	if p := e.ReprovisionPolicy; p != nil {
		if p.UpdateHubAssignment != nil {
			update = *p.UpdateHubAssignment
		}
		if p.MigrateDeviceData != nil {
			migrate = *p.MigrateDeviceData
		}
	}
	switch {
	case !update:
		return "stay on the current hub"
	case migrate:
		return "move to the new hub, migrate twin"
	default:
		return "move to the new hub, initial twin"
	}
}

type registrationRow struct {
	RegistrationID string `json:"registrationId"`
	DeviceID       string `json:"deviceId"`
	AssignedHub    string `json:"assignedHub"`
	Status         string `json:"status"`
	Substatus      string `json:"substatus"`
	ErrorCode      int    `json:"errorCode"`
	ErrorMessage   string `json:"errorMessage"`
	LastUpdated    string `json:"lastUpdatedDateTimeUtc"`
}

// decodeAs re-reads a component's JSON-shaped answer as T.
func decodeAs[T any](v any) T {
	var out T
	if b, err := json.Marshal(v); err == nil {
		_ = json.Unmarshal(b, &out)
	}
	return out
}

const dpsListLimit = 500

func (u *UI) dps(w http.ResponseWriter, r *http.Request, s *session) {
	v := u.viewFor(s, "DPS", "dps")
	if p := u.cfg.Provisioning; p != nil {
		v.Enrollments = decodeAs[[]enrollmentRow](p.Enrollments())
		v.Groups = decodeAs[[]enrollmentRow](p.EnrollmentGroups())
		regs := decodeAs[[]registrationRow](p.Registrations())
		v.RegCount = len(regs)
		v.Registrations = regs[:min(len(regs), dpsListLimit)]
		v.QuotaLimit, v.QuotaWindow = p.Quota()
	}
	m := u.dpsStats()
	v.QuotaPeak = jsonInt(m, "PeakPerWindow")
	if m == nil {
		v.Missing = "provisioning service"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		raw := m[k]
		if len(raw) > 0 && (raw[0] == '[' || raw[0] == '{') {
			continue // per-second lists and maps: the counters are enough here
		}
		v.DPS = append(v.DPS, kv{k, string(raw)})
	}
	u.render(w, "dps", v)
}

type openRow struct {
	Hub, Device, Name, Policy, State, Duration string
	ToDevice, ToService                        int64
	Rate                                       string // average bytes/s both ways since connected
}

type historyRow struct {
	Time, Device, Name, Policy, Operation, Status, Reason, Duration string
	ToDevice, ToService                                             *int64
}

func (u *UI) streams(w http.ResponseWriter, r *http.Request, s *session) {
	v := u.viewFor(s, "Streams", "streams")
	if u.cfg.Streams == nil {
		v.Missing = "streaming endpoint"
		u.render(w, "streams", v)
		return
	}
	st := u.cfg.Streams.StreamStats()
	v.Streams = &st
	now := u.now()
	for _, o := range u.cfg.Streams.Open() {
		row := openRow{Hub: o.Hub, Device: o.DeviceID, Name: o.Name, Policy: o.Policy, ToDevice: o.BytesToDevice, ToService: o.BytesToService,
			State: "waiting for both sides", Duration: now.Sub(o.Created).Round(time.Second).String(), Rate: "—"}
		if o.ModuleID != "" {
			row.Device += "/" + o.ModuleID
		}
		if !o.Connected.IsZero() {
			row.State = "connected"
			if secs := now.Sub(o.Connected).Seconds(); secs >= 1 {
				row.Rate = strconv.FormatFloat(float64(o.BytesToDevice+o.BytesToService)/secs, 'f', 0, 64)
			}
		}
		v.OpenStreams = append(v.OpenStreams, row)
	}
	for _, line := range u.cfg.Streams.History() {
		var rec struct {
			Time, OperationName, DurationMs, Properties string
		}
		var props struct {
			DeviceID, ModuleID, RequestName, Status, Reason string
			Policy                                          string `json:"skn"`
			BytesToDevice, BytesToService                   *int64
		}
		if json.Unmarshal(line, &rec) != nil || json.Unmarshal([]byte(rec.Properties), &props) != nil {
			continue
		}
		dev := props.DeviceID
		if props.ModuleID != "" {
			dev += "/" + props.ModuleID
		}
		dur := ""
		if ms, err := strconv.ParseInt(rec.DurationMs, 10, 64); err == nil && ms > 0 {
			dur = (time.Duration(ms) * time.Millisecond).String()
		}
		v.History = append(v.History, historyRow{Time: rec.Time, Device: dev, Name: props.RequestName, Policy: props.Policy, Operation: rec.OperationName,
			Status: props.Status, Reason: props.Reason, Duration: dur, ToDevice: props.BytesToDevice, ToService: props.BytesToService})
	}
	u.render(w, "streams", v)
}

func (u *UI) events(w http.ResponseWriter, r *http.Request, s *session) {
	v := u.viewFor(s, "Events", "events")
	v.Hubs = u.hubStats()
	v.Hub, v.DeviceID = r.URL.Query().Get("hub"), r.URL.Query().Get("device")
	v.Query = r.URL.Query().Get("contains")
	if v.Hub == "" && len(v.Hubs) > 0 {
		v.Hub = v.Hubs[0].HostName
	}
	u.render(w, "events", v)
}

// eventStream relays a hub's telemetry tap (admin.Hubs.ServeEvents, JSON
// lines) as server-sent events, keeping the events of devices whose id
// contains the device filter.
func (u *UI) eventStream(w http.ResponseWriter, r *http.Request, s *session) {
	host := r.URL.Query().Get("hub")
	if u.cfg.Hubs == nil || !u.cfg.Hubs.Has(host) {
		http.Error(w, "no such hub", http.StatusNotFound)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": tap open\n\n")
	fl.Flush()
	sw := &sseWriter{w: w, fl: fl, device: r.URL.Query().Get("device"), contains: r.URL.Query().Get("contains"), hdr: http.Header{}}
	q := r.URL.Query()
	q.Set("buffer", "256")
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = q.Encode()
	u.cfg.Hubs.ServeEvents(host, sw, r2)
}

// sseWriter turns the tap's JSON lines into server-sent events.
type sseWriter struct {
	w        http.ResponseWriter
	fl       http.Flusher
	device   string // keep events of devices whose id contains this
	contains string // keep events whose body or a property contains this
	hdr      http.Header
	buf      []byte
}

// keep applies the filters to one tap line; notices such as
// {"dropped":N} always pass.
func (s *sseWriter) keep(line []byte) bool {
	if s.device == "" && s.contains == "" {
		return true
	}
	var ev struct {
		DeviceID   *string           `json:"deviceId"`
		Properties map[string]string `json:"properties"`
		Body       []byte            `json:"body"`
	}
	if json.Unmarshal(line, &ev) != nil {
		return false
	}
	if ev.DeviceID == nil {
		return true
	}
	if !strings.Contains(*ev.DeviceID, s.device) {
		return false
	}
	if s.contains == "" || bytes.Contains(ev.Body, []byte(s.contains)) {
		return true
	}
	for k, v := range ev.Properties {
		if strings.Contains(k, s.contains) || strings.Contains(v, s.contains) {
			return true
		}
	}
	return false
}

func (s *sseWriter) Header() http.Header { return s.hdr }
func (s *sseWriter) WriteHeader(int)     {}
func (s *sseWriter) Flush()              { s.fl.Flush() }

func (s *sseWriter) Write(p []byte) (int, error) {
	s.buf = append(s.buf, p...)
	for {
		i := bytes.IndexByte(s.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := bytes.TrimSpace(s.buf[:i])
		s.buf = s.buf[i+1:]
		if len(line) == 0 {
			continue
		}
		if !s.keep(line) {
			continue
		}
		if _, err := fmt.Fprintf(s.w, "data: %s\n\n", line); err != nil {
			return 0, err
		}
	}
}

func (u *UI) faults(w http.ResponseWriter, r *http.Request, s *session) {
	v := u.viewFor(s, "Faults", "faults")
	v.Kinds = admin.Kinds
	v.Hubs = u.hubStats()
	v.Flash = r.URL.Query().Get("done")
	if u.cfg.Faults == nil {
		v.Missing = "fault switches"
	} else {
		v.Faults = u.cfg.Faults.List()
	}
	u.render(w, "faults", v)
}

func (u *UI) addFault(w http.ResponseWriter, r *http.Request, s *session) {
	if u.cfg.Faults == nil {
		u.actionError(w, http.StatusServiceUnavailable, "no fault switches")
		return
	}
	f := r.PostForm
	doc := map[string]any{"kind": f.Get("kind")}
	for _, k := range []string{"hub", "device", "delay", "after", "retryAfter", "side"} {
		if v := strings.TrimSpace(f.Get(k)); v != "" {
			doc[k] = v
		}
	}
	for _, k := range []string{"connackCode", "afterBytes"} {
		if v := strings.TrimSpace(f.Get(k)); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				u.actionError(w, http.StatusBadRequest, k+": not a whole number")
				return
			}
			doc[k] = n
		}
	}
	b, _ := json.Marshal(doc)
	var fault admin.Fault
	if err := json.Unmarshal(b, &fault); err != nil {
		u.actionError(w, http.StatusBadRequest, "fault: "+err.Error())
		return
	}
	added, err := u.cfg.Faults.Add(fault)
	if err != nil {
		u.actionError(w, http.StatusBadRequest, "fault refused: "+err.Error())
		return
	}
	http.Redirect(w, r, Prefix+"faults?done="+url.QueryEscape("fault "+added.ID+" ("+string(added.Kind)+") on"), http.StatusSeeOther)
}

func (u *UI) clearFault(w http.ResponseWriter, r *http.Request, s *session) {
	if u.cfg.Faults == nil {
		u.actionError(w, http.StatusServiceUnavailable, "no fault switches")
		return
	}
	msg := "every fault off"
	if id := r.PostForm.Get("id"); id != "" {
		if !u.cfg.Faults.Clear(id) {
			u.actionError(w, http.StatusNotFound, "no fault "+id)
			return
		}
		msg = "fault " + id + " off"
	} else {
		u.cfg.Faults.ClearAll()
	}
	http.Redirect(w, r, Prefix+"faults?done="+url.QueryEscape(msg), http.StatusSeeOther)
}
