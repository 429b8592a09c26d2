package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/admin"
	"github.com/porthole-iot/porthole/hubsim/internal/hub"
	"github.com/porthole-iot/porthole/hubsim/internal/relay"
	"github.com/porthole-iot/porthole/hubsim/internal/sas"
)

const (
	hubTestHost   = "hub-routes.example.net"
	hubTestPolKey = "aHViLXBvbGljeS1rZXktaHViLXBvbGljeS1rZXktMTIzNDU2Nzg5"
	hubTestDevKey = "aHViLWRldmljZS1rZXktaHViLWRldmljZS1rZXktMTIzNDU2Nzg5"
	hubTestOwner  = "iothubowner"
)

// hubRights are the hub's shared access policy rights, one test policy
// each, named after the right it holds.
var hubRights = []string{sas.RightRegistryRead, sas.RightRegistryWrite, sas.RightServiceConnect, sas.RightDeviceConnect}

// offlineRelay is a streaming endpoint no stream request may reach: the
// samples' device is offline, so the hub must answer before Create.
type offlineRelay struct{ t *testing.T }

func (r offlineRelay) Create(spec relay.StreamSpec) (relay.Ticket, error) {
	r.t.Errorf("relay asked to create a stream for offline %s/%s", spec.DeviceID, spec.ModuleID)
	return relay.Ticket{}, context.Canceled
}
func (offlineRelay) Cancel(string, string) {}
func (offlineRelay) Accepted(string)       {}

// hubRouter is hubsim's router with one hub (an owner policy and one
// policy per right; device dev1 with module mod1, both offline), DPS and
// the admin API on the one mux. It returns the stream requests the hub
// logged and the paths the router itself recorded as unhandled.
func hubRouter(t *testing.T) (*router, *hub.Set, func() []hub.StreamEvent, *[]string) {
	t.Helper()
	pols := []sas.Policy{{Name: hubTestOwner, PrimaryKey: hubTestPolKey, Rights: hubRights}}
	for _, r := range hubRights {
		pols = append(pols, sas.Policy{Name: r, PrimaryKey: hubTestPolKey, Rights: []string{r}})
	}
	var mu sync.Mutex
	var streams []hub.StreamEvent
	set, err := hub.NewSet(hub.Config{Hubs: []hub.HubConfig{{HostName: hubTestHost, Policies: pols}},
		Relay: offlineRelay{t}, Logger: slog.New(slog.DiscardHandler),
		StreamLog: func(ev hub.StreamEvent) { mu.Lock(); streams = append(streams, ev); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	h, _ := set.Hub(hubTestHost)
	ctx := context.Background()
	if _, err := h.CreateDevice(ctx, hub.Device{DeviceID: "dev1", Authentication: &hub.Authentication{Type: "sas",
		SymmetricKey: &hub.SymmetricKey{PrimaryKey: hubTestDevKey, SecondaryKey: hubTestDevKey}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.CreateModule(ctx, hub.Module{DeviceID: "dev1", ModuleID: "mod1"}); err != nil {
		t.Fatal(err)
	}
	api, err := admin.New(admin.Config{Auth: &admin.Authorizer{Token: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	var rec []string
	rt, err := newRouterFor(Components{Hub: set, DPS: named("dps"), Admin: api, Relay: named("relay")}, time.Now,
		func(m, p string) { rec = append(rec, m+" "+p) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	logged := func() []hub.StreamEvent {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(streams)
	}
	return rt, set, logged, &rec
}

func serveHub(rt *router, method, target, auth, body string) dpsResult {
	return serveAt(rt, hubTestHost, method, target, auth, body)
}

// hubErrorCode is the code of a hub error answer: the iothub-errorcode
// header, which must agree with the "ErrorCode:<name>;…" Message of the
// body; "" when the answer is not an error in the hub's shape.
func hubErrorCode(t *testing.T, res dpsResult) string {
	t.Helper()
	code := res.hdr.Get(hubErrorHeader)
	if code == "" {
		return ""
	}
	var e hubError
	if err := json.Unmarshal([]byte(res.body), &e); err != nil || !strings.HasPrefix(e.Message, "ErrorCode:"+code+";") {
		t.Errorf("%s %s with body %s: not the hub's error shape (%v)", hubErrorHeader, code, res.body, err)
	}
	return code
}

// TestHubRoutes pins every route of the hub service REST API with the
// shared access policy rights it accepts (any one suffices), and proves
// that each is a pattern of the one mux its sample request resolves to,
// that every credential without one of those rights is refused with 401
// IotHubUnauthorizedAccess in the hub's error shape, and that each right
// alone reaches the route's handler. It also pins that the other verbs on
// each path answer 405 before authorization and that unknown paths under
// the hub's prefixes answer 404.
//
// Rights [MicrosoftDocs/azure-docs articles/iot-hub/authorize-sas.md,
// "Access control and permissions"]: RegistryRead reads the identity
// registry (devices, modules, registry statistics), RegistryWrite changes
// it; ServiceConnect is the back end's endpoints: direct methods, device
// streams, cloud-to-device messages (purge), twin reads and updates, and
// queries. Queries also take RegistryRead
// [MicrosoftDocs/azure-docs includes/iot-hub-howto-twin-shared-access-policy-text.md].
// Twin reads also taking RegistryRead, twin updates RegistryWrite and
// service statistics RegistryRead are hubsim's choice: no Azure page
// says either way.
func TestHubRoutes(t *testing.T) {
	const (
		read  = sas.RightRegistryRead
		write = sas.RightRegistryWrite
		svc   = sas.RightServiceConnect
	)
	// In the order hub.Set.Routes lists them; each sample runs once per
	// right that lets it through, so later rows see earlier rows' effects.
	routes := []struct {
		pattern    string
		rights     []string
		path, body string // sample request
		want       int    // status with a right credential
		code       string // its iothub-errorcode, "" for success
	}{
		{"GET /devices", []string{read}, "/devices?top=10&api-version=2021-04-12", "", 200, ""},
		{"POST /devices/query", []string{svc, read}, "/devices/query?api-version=2021-04-12", `{"query":"SELECT * FROM devices"}`, 200, ""},
		{"GET /devices/{id}", []string{read}, "/devices/dev1", "", 200, ""},
		{"PUT /devices/{id}", []string{write}, "/devices/dev2", `{"deviceId":"dev2"}`, 200, ""},
		{"DELETE /devices/{id}", []string{write}, "/devices/dev2", "", 204, ""},
		{"GET /devices/{id}/modules", []string{read}, "/devices/dev1/modules", "", 200, ""},
		{"DELETE /devices/{id}/commands", []string{svc}, "/devices/dev1/commands", "", 200, ""},
		{"GET /devices/{id}/modules/{mid}", []string{read}, "/devices/dev1/modules/mod1", "", 200, ""},
		{"PUT /devices/{id}/modules/{mid}", []string{write}, "/devices/dev1/modules/mod2", `{"moduleId":"mod2"}`, 200, ""},
		{"DELETE /devices/{id}/modules/{mid}", []string{write}, "/devices/dev1/modules/mod2", "", 204, ""},
		{"GET /twins/{id}", []string{svc, read}, "/twins/dev1", "", 200, ""},
		{"PATCH /twins/{id}", []string{svc, write}, "/twins/dev1", `{"tags":{"site":"a"}}`, 200, ""},
		{"PUT /twins/{id}", []string{svc, write}, "/twins/dev1", `{"tags":{"site":"b"}}`, 200, ""},
		{"GET /twins/{id}/modules/{mid}", []string{svc, read}, "/twins/dev1/modules/mod1", "", 200, ""},
		{"PATCH /twins/{id}/modules/{mid}", []string{svc, write}, "/twins/dev1/modules/mod1", `{"properties":{"desired":{"x":1}}}`, 200, ""},
		{"PUT /twins/{id}/modules/{mid}", []string{svc, write}, "/twins/dev1/modules/mod1", `{"properties":{"desired":{"x":2}}}`, 200, ""},
		{"POST /twins/{id}/methods", []string{svc}, "/twins/dev1/methods", `{"methodName":"reboot"}`, 404, "DeviceNotOnline"},
		{"POST /twins/{id}/modules/{mid}/methods", []string{svc}, "/twins/dev1/modules/mod1/methods", `{"methodName":"reboot"}`, 404, "DeviceNotOnline"},
		{"POST /twins/{id}/streams/{name...}", []string{svc}, "/twins/dev1/streams/ssh", "", 404, "DeviceNotOnline"},
		{"POST /twins/{id}/modules/{mid}/streams/{name...}", []string{svc}, "/twins/dev1/modules/mod1/streams/ssh", "", 404, "DeviceNotOnline"},
		{"GET /statistics/devices", []string{read}, "/statistics/devices", "", 200, ""},
		{"GET /statistics/service", []string{svc, read}, "/statistics/service", "", 200, ""},
	}
	rt, set, streams, rec := hubRouter(t)

	got := set.Routes()
	if len(got) != len(routes) {
		t.Errorf("the hub registers %d routes, the table pins %d: %v", len(got), len(routes), got)
	}
	for i := range min(len(got), len(routes)) {
		if got[i].Pattern != routes[i].pattern || !slices.Equal(got[i].Rights, routes[i].rights) {
			t.Errorf("route %d = %q accepts %v, pinned %q accepts %v", i, got[i].Pattern, got[i].Rights, routes[i].pattern, routes[i].rights)
		}
	}

	tokenFor := func(policy string) string { return signToken(t, hubTestHost, hubTestPolKey, policy) }
	deviceTok := signToken(t, hubTestHost+"/devices/dev1", hubTestDevKey, "")
	pinned := map[string]bool{}
	for _, tt := range routes {
		pinned[tt.pattern] = true
		t.Run(tt.pattern, func(t *testing.T) {
			method, _, _ := strings.Cut(tt.pattern, " ")
			if _, pat := rt.mux.Handler(httptest.NewRequest(method, tt.path, nil)); pat != tt.pattern {
				t.Fatalf("%s %s resolves to %q on the one mux", method, tt.path, pat)
			}
			wrong := []string{"", deviceTok}
			for _, r := range hubRights {
				if !slices.Contains(tt.rights, r) {
					wrong = append(wrong, tokenFor(r))
				}
			}
			for _, tok := range wrong {
				res := serveHub(rt, method, tt.path, tok, tt.body)
				if res.code != http.StatusUnauthorized || hubErrorCode(t, res) != "IotHubUnauthorizedAccess" {
					t.Errorf("credential %.50q…: %d %v %s, want 401 IotHubUnauthorizedAccess", tok, res.code, res.hdr, res.body)
				}
			}
			for _, r := range tt.rights {
				res := serveHub(rt, method, tt.path, tokenFor(r), tt.body)
				if res.code != tt.want || hubErrorCode(t, res) != tt.code {
					t.Errorf("with %s alone: %d %s, want %d %q", r, res.code, res.body, tt.want, tt.code)
				}
			}
		})
	}

	// The stream handler got the device, module and stream name from the
	// patterns: one "offline" event per stream sample.
	var ev []string
	for _, e := range streams() {
		ev = append(ev, e.DeviceID+"/"+e.ModuleID+"/"+e.Name+":"+e.Event)
	}
	if want := []string{"dev1//ssh:requested", "dev1//ssh:offline", "dev1/mod1/ssh:requested", "dev1/mod1/ssh:offline"}; !slices.Equal(ev, want) {
		t.Errorf("stream log %q, want %q", ev, want)
	}

	// Every other verb on each sample path answers 405 InvalidOperation
	// without a credential: no route behind it, and no authorization first.
	// HEAD resolves to the GET pattern, whose handler refuses it first.
	methods := map[string][]string{} // pattern path: its verbs
	sample := map[string]string{}    // pattern path: a sample path
	for _, tt := range routes {
		m, p, _ := strings.Cut(tt.pattern, " ")
		methods[p] = append(methods[p], m)
		sample[p], _, _ = strings.Cut(tt.path, "?")
	}
	for p, known := range methods {
		path := sample[p]
		for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
			if slices.Contains(known, m) {
				continue
			}
			if _, pat := rt.mux.Handler(httptest.NewRequest(m, path, nil)); pinned[pat] && m != http.MethodHead {
				t.Errorf("%s %s resolves to route %q", m, path, pat)
			}
			res := serveHub(rt, m, path, "", "")
			if res.code != http.StatusMethodNotAllowed || res.hdr.Get(hubErrorHeader) != "InvalidOperation" {
				t.Errorf("%s %s: %d %v %s, want 405 InvalidOperation before authorization", m, path, res.code, res.hdr, res.body)
			}
			if m != http.MethodHead {
				hubErrorCode(t, res)
			}
		}
	}

	// Unknown paths under the hub's prefixes answer 404 IotHubNotFound,
	// even to the owner, and the hub records them as unhandled.
	owner := tokenFor(hubTestOwner)
	for _, tt := range []struct{ method, path string }{
		{"GET", "/devices/x/y/z"},
		{"GET", "/devices/dev1/modules/mod1/extra"},
		{"POST", "/devices/dev1/messages/events"},
		{"GET", "/messages"},
		{"POST", "/messages/devicebound"},
		{"GET", "/messages/servicebound/feedback"},
		{"POST", "/twins"},
		{"GET", "/twins/dev1/unknown"},
		{"POST", "/twins/dev1/streams"},
		{"POST", "/twins/dev1/modules/mod1/streams"},
		{"POST", "/twins/dev1/modules/mod1/methods/x"},
		{"GET", "/statistics"},
		{"GET", "/statistics/other"},
		{"GET", "/configurations"},
		{"POST", "/jobs/v2/query"},
	} {
		before := len(set.Unhandled())
		res := serveHub(rt, tt.method, tt.path, owner, "{}")
		if res.code != http.StatusNotFound || hubErrorCode(t, res) != "IotHubNotFound" {
			t.Errorf("%s %s: %d %v %s, want 404 IotHubNotFound", tt.method, tt.path, res.code, res.hdr, res.body)
		}
		if len(set.Unhandled()) != before+1 {
			t.Errorf("%s %s: not recorded as unhandled by the hub", tt.method, tt.path)
		}
	}
	if len(*rec) > 0 {
		t.Errorf("the router recorded hub paths itself: %q", *rec)
	}
}
