package nodetest

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
)

// sdkError is what testdata/lib.js reports for an SDK error.
type sdkError struct {
	UnexpectedSuccess bool   `json:"unexpectedSuccess"`
	Name              string `json:"name"`
	Message           string `json:"message"`
	StatusCode        int    `json:"statusCode"`
	ResponseBody      string `json:"responseBody"`
}

// errorCode is the error code an Azure REST error body carries: the name
// in the `{"Message":"ErrorCode:<name>;<text>"}` form the hub's REST API
// uses and the Node SDK parses (Azure/azure-iot-sdk-node
// common/transport/http/src/http.ts, parseErrorBody), or the numeric
// errorCode of the JSON form, top-level or inside Message.
func (e sdkError) errorCode() string {
	var body struct {
		ErrorCode json.Number `json:"errorCode"`
		Message   string      `json:"Message"`
	}
	if json.Unmarshal([]byte(e.ResponseBody), &body) != nil {
		return ""
	}
	if body.ErrorCode != "" {
		return body.ErrorCode.String()
	}
	if rest, ok := strings.CutPrefix(body.Message, "ErrorCode:"); ok {
		name, _, _ := strings.Cut(rest, ";")
		return name
	}
	var inner struct {
		ErrorCode json.Number `json:"errorCode"`
	}
	if json.Unmarshal([]byte(body.Message), &inner) == nil {
		return inner.ErrorCode.String()
	}
	return ""
}

type registryResult struct {
	CreateStatusCode int `json:"createStatusCode"`
	Created          struct {
		DeviceID      string `json:"deviceId"`
		Status        string `json:"status"`
		ETag          string `json:"etag"`
		AuthType      string `json:"authType"`
		HasPrimaryKey bool   `json:"hasPrimaryKey"`
	} `json:"created"`
	Duplicate sdkError `json:"duplicate"`
	Got       struct {
		DeviceID        string `json:"deviceId"`
		Status          string `json:"status"`
		ETag            string `json:"etag"`
		ConnectionState string `json:"connectionState"`
	} `json:"got"`
	Updated struct {
		DeviceID string `json:"deviceId"`
		Status   string `json:"status"`
		ETag     string `json:"etag"`
	} `json:"updated"`
	ListIDs    []string `json:"listIds"`
	TwinBefore struct {
		DeviceID string         `json:"deviceId"`
		ETag     string         `json:"etag"`
		Version  int            `json:"version"`
		Desired  map[string]any `json:"desired"`
	} `json:"twinBefore"`
	TwinAfter struct {
		ETag    string         `json:"etag"`
		Version int            `json:"version"`
		Tags    map[string]any `json:"tags"`
		Desired map[string]any `json:"desired"`
	} `json:"twinAfter"`
	StaleETag  sdkError `json:"staleEtag"`
	TwinReread struct {
		ETag    string         `json:"etag"`
		Tags    map[string]any `json:"tags"`
		Desired map[string]any `json:"desired"`
	} `json:"twinReread"`
	TwinSecond struct {
		Desired map[string]any `json:"desired"`
	} `json:"twinSecond"`
	AfterDelete sdkError `json:"afterDelete"`
}

// testRegistry: azure-iothub Registry CRUD, list and twin updates with
// etags (scenario 1).
func testRegistry(t *testing.T, env *nodeEnv, sim *hubsimtest.Sim) {
	const id = "node-registry-1"
	sim.CreateDevice(hubA, "node-registry-other") // list must show it too
	var r registryResult
	if f := env.run(t, "registry.js", map[string]any{
		"hubConnectionString": sim.HubConnectionString(hubA),
		"deviceId":            id,
	}, &r); f != nil {
		t.Fatalf("registry.js failed: %s", f)
	}

	if r.Created.DeviceID != id || r.Created.Status != "enabled" || r.Created.ETag == "" {
		t.Errorf("create: %+v", r.Created)
	}
	if r.Created.AuthType != "sas" || !r.Created.HasPrimaryKey {
		t.Errorf("create without keys: auth type %q, primary key generated %v; want sas with generated keys", r.Created.AuthType, r.Created.HasPrimaryKey)
	}
	if r.Duplicate.UnexpectedSuccess || r.Duplicate.StatusCode != 409 {
		t.Errorf("duplicate create: %+v, want HTTP 409", r.Duplicate)
	}
	if r.Got.DeviceID != id || r.Got.ETag != r.Created.ETag || r.Got.ConnectionState != "Disconnected" {
		t.Errorf("get: %+v (created etag %q)", r.Got, r.Created.ETag)
	}
	if r.Updated.Status != "disabled" || r.Updated.ETag == r.Got.ETag {
		t.Errorf("update: %+v, want disabled with a new etag", r.Updated)
	}
	if !slices.Contains(r.ListIDs, id) || !slices.Contains(r.ListIDs, "node-registry-other") {
		t.Errorf("list: %v", r.ListIDs)
	}
	if r.TwinBefore.DeviceID != id || r.TwinBefore.ETag == "" || len(r.TwinBefore.Desired) != 0 {
		t.Errorf("twin before: %+v", r.TwinBefore)
	}
	wantTags := map[string]any{"site": "lab", "floor": float64(3)}
	if !reflect.DeepEqual(r.TwinAfter.Tags, wantTags) ||
		!reflect.DeepEqual(r.TwinAfter.Desired, map[string]any{"interval": float64(30), "mode": "eco"}) ||
		r.TwinAfter.ETag == r.TwinBefore.ETag {
		t.Errorf("twin.update: %+v", r.TwinAfter)
	}
	if r.StaleETag.UnexpectedSuccess || r.StaleETag.StatusCode != 412 {
		t.Errorf("updateTwin with a stale etag: %+v, want HTTP 412", r.StaleETag)
	}
	if r.TwinReread.ETag != r.TwinAfter.ETag || !reflect.DeepEqual(r.TwinReread.Tags, wantTags) {
		t.Errorf("twin reread: %+v (after update etag %q)", r.TwinReread, r.TwinAfter.ETag)
	}
	if !reflect.DeepEqual(r.TwinSecond.Desired, map[string]any{"interval": float64(30)}) {
		t.Errorf("desired after null patch: %v, want mode removed", r.TwinSecond.Desired)
	}
	if r.AfterDelete.UnexpectedSuccess || r.AfterDelete.StatusCode != 404 || r.AfterDelete.Name != "DeviceNotFoundError" {
		t.Errorf("get after delete: %+v, want 404 DeviceNotFoundError", r.AfterDelete)
	}

	// The Go side sees the same registry.
	ctx := ctxT(t)
	if _, err := sim.Hub(hubA).GetDevice(ctx, id); err == nil {
		t.Error("device still in the hub's registry after the SDK deleted it")
	}
}
