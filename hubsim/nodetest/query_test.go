package nodetest

import (
	"reflect"
	"slices"
	"testing"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/hubsim/internal/hub"
)

type queryResult struct {
	TwinPages          []int            `json:"twinPages"`
	TwinIDs            []string         `json:"twinIds"`
	TwinsAreTwins      bool             `json:"twinsAreTwins"`
	Projection         []map[string]any `json:"projection"`
	ProjectionItemType string           `json:"projectionItemType"`
	ProjectionHasMore  bool             `json:"projectionHasMore"`
	Groups             []map[string]any `json:"groups"`
	ModuleTwins        []string         `json:"moduleTwins"`
	Invalid            sdkError         `json:"invalid"`
}

// testQuery: azure-iothub Registry.createQuery with nextAsTwin paging,
// projections, GROUP BY, module twins and a refused query.
func testQuery(t *testing.T, env *nodeEnv, sim *hubsimtest.Sim) {
	ctx := ctxT(t)
	h := sim.Hub(hubA)
	ids := []string{"node-q-1", "node-q-2", "node-q-3", "node-q-4", "node-q-5"}
	for i, id := range ids {
		sim.CreateDevice(hubA, id)
		if _, err := h.UpdateTwin(ctx, id, "", hub.TwinPatch{Tags: map[string]any{"nodeq": "yes", "rank": i + 1}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	sim.CreateDevice(hubA, "node-q-other")
	if _, err := h.UpdateTwin(ctx, "node-q-other", "", hub.TwinPatch{Tags: map[string]any{"nodeq": "no"}}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.CreateModule(ctx, hub.Module{DeviceID: "node-q-1", ModuleID: "m1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.UpdateTwin(ctx, "node-q-1", "m1", hub.TwinPatch{Tags: map[string]any{"nodeq": "mod"}}, ""); err != nil {
		t.Fatal(err)
	}

	var r queryResult
	if f := env.run(t, "query.js", map[string]any{
		"hubConnectionString": sim.HubConnectionString(hubA),
		"pageSize":            2,
	}, &r); f != nil {
		t.Fatalf("query.js failed: %s", f)
	}
	if want := []string{"node-q-1", "node-q-2", "node-q-4", "node-q-5"}; !slices.Equal(r.TwinIDs, want) || !slices.Equal(r.TwinPages, []int{2, 2}) || !r.TwinsAreTwins {
		t.Errorf("nextAsTwin paging: ids %v in pages %v (Twin objects %v), want %v in [2 2]", r.TwinIDs, r.TwinPages, r.TwinsAreTwins, want)
	}
	wantProj := []map[string]any{{"deviceId": "node-q-2", "rank": float64(2)}, {"deviceId": "node-q-3", "rank": float64(3)},
		{"deviceId": "node-q-4", "rank": float64(4)}, {"deviceId": "node-q-5", "rank": float64(5)}}
	if !reflect.DeepEqual(r.Projection, wantProj) || r.ProjectionItemType != "raw" || r.ProjectionHasMore {
		t.Errorf("projection: %v (item type %q, more %v)", r.Projection, r.ProjectionItemType, r.ProjectionHasMore)
	}
	if want := []map[string]any{{"q": "no", "n": float64(1)}, {"q": "yes", "n": float64(5)}}; !reflect.DeepEqual(r.Groups, want) {
		t.Errorf("group by: %v, want %v", r.Groups, want)
	}
	if !slices.Equal(r.ModuleTwins, []string{"node-q-1/m1"}) {
		t.Errorf("module twins: %v", r.ModuleTwins)
	}
	if r.Invalid.UnexpectedSuccess || r.Invalid.StatusCode != 400 || r.Invalid.errorCode() != "ArgumentInvalid" {
		t.Errorf("invalid query: %+v, want HTTP 400 ArgumentInvalid", r.Invalid)
	}
}
