package nodetest

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/hubsim/internal/dps"
	"github.com/porthole-iot/porthole/hubsim/internal/hub"
	"github.com/porthole-iot/porthole/sdk/auth"
)

type provServiceResult struct {
	Created struct {
		RegistrationID     string   `json:"registrationId"`
		DeviceID           string   `json:"deviceId"`
		ProvisioningStatus string   `json:"provisioningStatus"`
		ETag               string   `json:"etag"`
		AllocationPolicy   string   `json:"allocationPolicy"`
		IoTHubs            []string `json:"iotHubs"`
	} `json:"created"`
	CreatedKey bool `json:"createdKey"`
	Got        struct {
		RegistrationID string `json:"registrationId"`
		DeviceID       string `json:"deviceId"`
		ETag           string `json:"etag"`
	} `json:"got"`
	GotAttestationType string `json:"gotAttestationType"`
	GotInitialTwin     struct {
		Tags       map[string]any `json:"tags"`
		Properties struct {
			Desired map[string]any `json:"desired"`
		} `json:"properties"`
	} `json:"gotInitialTwin"`
	Updated struct {
		ProvisioningStatus string `json:"provisioningStatus"`
		ETag               string `json:"etag"`
	} `json:"updated"`
	GroupCreated struct {
		EnrollmentGroupID  string `json:"enrollmentGroupId"`
		ProvisioningStatus string `json:"provisioningStatus"`
		ETag               string `json:"etag"`
	} `json:"groupCreated"`
	GroupGot struct {
		EnrollmentGroupID string `json:"enrollmentGroupId"`
		ETag              string `json:"etag"`
	} `json:"groupGot"`
	GroupAttestationType string   `json:"groupAttestationType"`
	QueryIDs             []string `json:"queryIds"`
	QueryHasMore         bool     `json:"queryHasMore"`
	GroupQueryIDs        []string `json:"groupQueryIds"`
	GetDeleted           sdkError `json:"getDeleted"`
	GetDeletedGroup      sdkError `json:"getDeletedGroup"`

	AttestationMechanismType      string   `json:"attestationMechanismType"`
	GroupAttestationMechanismType string   `json:"groupAttestationMechanismType"`
	BulkSuccessful                bool     `json:"bulkSuccessful"`
	GroupRegistrationIDs          []string `json:"groupRegistrationIds"`
	RegistrationState             struct {
		RegistrationID string `json:"registrationId"`
		Status         string `json:"status"`
		AssignedHub    string `json:"assignedHub"`
	} `json:"registrationState"`
	GetDeletedRegistration sdkError `json:"getDeletedRegistration"`
}

// testProvisioningService: azure-iot-provisioning-service individual
// enrollment and enrollment group CRUD and queries (scenario 4).
func testProvisioningService(t *testing.T, env *nodeEnv, sim *hubsimtest.Sim) {
	const regID, groupID, bulkID = "node-enroll-1", "node-group-1", "node-bulk-1"
	const registeredGroup, registeredID = "node-registered-group", "node-registered-1"
	sim.EnrollSymmetricKey("node-enroll-other", nil) // the query must list it too
	registerInGroup(t, sim, registeredGroup, registeredID)
	var r provServiceResult
	if f := env.run(t, "provservice.js", map[string]any{
		"dpsConnectionString": sim.DPSConnectionString(),
		"registrationId":      regID,
		"groupId":             groupID,
		"primaryKey":          hubsimtest.NewKey(t),
		"secondaryKey":        hubsimtest.NewKey(t),
		"iotHub":              hubB,
		"bulkId":              bulkID,
		"registeredId":        registeredID,
		"registeredGroupId":   registeredGroup,
	}, &r); f != nil {
		t.Fatalf("provservice.js failed: %s", f)
	}

	if r.Created.RegistrationID != regID || r.Created.DeviceID != regID+"-dev" || r.Created.ProvisioningStatus != "enabled" ||
		r.Created.ETag == "" || r.Created.AllocationPolicy != "static" || !slices.Equal(r.Created.IoTHubs, []string{hubB}) || !r.CreatedKey {
		t.Errorf("create enrollment: %+v (key kept: %v)", r.Created, r.CreatedKey)
	}
	if r.Got.RegistrationID != regID || r.Got.ETag != r.Created.ETag || r.GotAttestationType != "symmetricKey" {
		t.Errorf("get enrollment: %+v attestation %q", r.Got, r.GotAttestationType)
	}
	if !reflect.DeepEqual(r.GotInitialTwin.Tags, map[string]any{"origin": "node"}) ||
		!reflect.DeepEqual(r.GotInitialTwin.Properties.Desired, map[string]any{"interval": float64(7)}) {
		t.Errorf("initial twin: %+v", r.GotInitialTwin)
	}
	if r.Updated.ProvisioningStatus != "disabled" || r.Updated.ETag == r.Got.ETag {
		t.Errorf("update enrollment: %+v", r.Updated)
	}
	if r.GroupCreated.EnrollmentGroupID != groupID || r.GroupCreated.ETag == "" || r.GroupGot.ETag != r.GroupCreated.ETag || r.GroupAttestationType != "symmetricKey" {
		t.Errorf("group: created %+v got %+v attestation %q", r.GroupCreated, r.GroupGot, r.GroupAttestationType)
	}
	if !slices.Contains(r.QueryIDs, regID) || !slices.Contains(r.QueryIDs, "node-enroll-other") || r.QueryHasMore {
		t.Errorf("enrollment query: %v (more: %v)", r.QueryIDs, r.QueryHasMore)
	}
	if !slices.Contains(r.GroupQueryIDs, groupID) {
		t.Errorf("group query: %v", r.GroupQueryIDs)
	}
	if r.GetDeleted.UnexpectedSuccess || r.GetDeleted.StatusCode != 404 {
		t.Errorf("get deleted enrollment: %+v, want 404", r.GetDeleted)
	}
	if r.GetDeletedGroup.UnexpectedSuccess || r.GetDeletedGroup.StatusCode != 404 {
		t.Errorf("get deleted group: %+v, want 404", r.GetDeletedGroup)
	}
	if r.AttestationMechanismType != "symmetricKey" || r.GroupAttestationMechanismType != "symmetricKey" {
		t.Errorf("attestation mechanisms: enrollment %q, group %q", r.AttestationMechanismType, r.GroupAttestationMechanismType)
	}
	if !r.BulkSuccessful {
		t.Error("bulk create reported failure")
	}
	if !slices.Equal(r.GroupRegistrationIDs, []string{registeredID}) {
		t.Errorf("group registration states: %v, want [%s]", r.GroupRegistrationIDs, registeredID)
	}
	if r.RegistrationState.RegistrationID != registeredID || r.RegistrationState.Status != dps.StatusAssigned || r.RegistrationState.AssignedHub == "" {
		t.Errorf("registration state: %+v", r.RegistrationState)
	}
	if r.GetDeletedRegistration.UnexpectedSuccess || r.GetDeletedRegistration.StatusCode != 404 {
		t.Errorf("get deleted registration state: %+v, want 404", r.GetDeletedRegistration)
	}
	// The Go side agrees.
	if _, ok := sim.DPS().GetEnrollment(bulkID); !ok {
		t.Errorf("the bulk operation did not create %s", bulkID)
	}
	if _, ok := sim.DPS().RegistrationState(registeredID); ok {
		t.Error("registration state still in the DPS after the SDK deleted it")
	}
	if _, ok := sim.DPS().GetEnrollment(regID); ok {
		t.Error("enrollment still in the DPS after the SDK deleted it")
	}
	if _, ok := sim.DPS().GetEnrollmentGroup(groupID); ok {
		t.Error("enrollment group still in the DPS after the SDK deleted it")
	}
}

// registerInGroup enrolls group and registers deviceID in it through DPS's
// in-process device API, so the service client has a registration state
// to read.
func registerInGroup(t *testing.T, sim *hubsimtest.Sim, group, deviceID string) {
	t.Helper()
	gkey := sim.EnrollGroupSymmetricKey(group, nil)
	key, err := auth.DeriveGroupKey(gkey, deviceID)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.DPSToken(idScope, deviceID, key, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ans, err := sim.DPS().Device(t.Context(), dps.DeviceCall{Op: dps.OpRegister, IDScope: idScope, RegistrationID: deviceID, SAS: tok, Transport: "test"})
	if err != nil || ans.Status >= 300 {
		t.Fatalf("register %s: %+v %v", deviceID, ans, err)
	}
	if st, ok := sim.DPS().RegistrationState(deviceID); !ok || st.Status != dps.StatusAssigned {
		t.Fatalf("registration state of %s after registering: %+v %v", deviceID, st, ok)
	}
}

type provisionResult struct {
	AssignedHub    string         `json:"assignedHub"`
	DeviceID       string         `json:"deviceId"`
	Status         string         `json:"status"`
	Substatus      string         `json:"substatus"`
	RegistrationID string         `json:"registrationId"`
	Desired        map[string]any `json:"desired"`
}

// testProvisionIndividual: azure-iot-provisioning-device over HTTPS with a
// symmetric-key individual enrollment, then the device connects to its hub
// (scenario 5).
func testProvisionIndividual(t *testing.T, env *nodeEnv, sim *hubsimtest.Sim) {
	const regID = "node-prov-http-1"
	key := sim.EnrollSymmetricKey(regID, func(e *hubsimtest.IndividualEnrollment) {
		e.DeviceID = "node-prov-http-dev"
		e.IoTHubs = []string{hubB}
		e.InitialTwin = &hubsimtest.InitialTwin{
			Tags:       map[string]any{"batch": "7"},
			Properties: &dps.InitialTwinProperties{Desired: map[string]any{"interval": 9}},
		}
	})
	provision(t, env, sim, map[string]any{"registrationId": regID, "key": key, "transport": "http"},
		provisionResult{AssignedHub: hubB, DeviceID: "node-prov-http-dev", RegistrationID: regID,
			Desired: map[string]any{"interval": float64(9)}})
}

// testProvisionGroup: azure-iot-provisioning-device over MQTT with a key
// derived from a symmetric-key enrollment group (scenario 5).
func testProvisionGroup(t *testing.T, env *nodeEnv, sim *hubsimtest.Sim) {
	const regID = "node-prov-mqtt-1"
	groupKey := sim.EnrollGroupSymmetricKey("node-prov-group", func(g *hubsimtest.EnrollmentGroup) {
		g.IoTHubs = []string{hubA}
	})
	provision(t, env, sim, map[string]any{"registrationId": regID, "groupKey": groupKey, "transport": "mqtt"},
		provisionResult{AssignedHub: hubA, DeviceID: regID, RegistrationID: regID, Desired: map[string]any{}})
}

// testProvisionWebSocket: azure-iot-provisioning-device over MQTT over
// WebSocket (port 443) with an individual enrollment.
func testProvisionWebSocket(t *testing.T, env *nodeEnv, sim *hubsimtest.Sim) {
	const regID = "node-prov-ws-1"
	key := sim.EnrollSymmetricKey(regID, func(e *hubsimtest.IndividualEnrollment) {
		e.IoTHubs = []string{hubA}
	})
	provision(t, env, sim, map[string]any{"registrationId": regID, "key": key, "transport": "mqttws"},
		provisionResult{AssignedHub: hubA, DeviceID: regID, RegistrationID: regID, Desired: map[string]any{}})
}

func provision(t *testing.T, env *nodeEnv, sim *hubsimtest.Sim, input map[string]any, want provisionResult) {
	t.Helper()
	marker := "p-" + input["transport"].(string) + "-" + time.Now().UTC().Format("150405.000")
	input["provisioningHost"] = dpsHost
	input["idScope"] = idScope
	input["marker"] = marker
	events, cancel := sim.Hub(want.AssignedHub).Subscribe(64)
	defer cancel()

	var r provisionResult
	if f := env.run(t, "provision.js", input, &r); f != nil {
		t.Fatalf("provision.js (%s) failed: %s", input["transport"], f)
	}
	if r.AssignedHub != want.AssignedHub || r.DeviceID != want.DeviceID || r.RegistrationID != want.RegistrationID || r.Status != "assigned" {
		t.Errorf("registration: %+v, want hub %s device %s status assigned", r, want.AssignedHub, want.DeviceID)
	}
	if !reflect.DeepEqual(r.Desired, want.Desired) {
		t.Errorf("desired properties the device read after provisioning: %v, want %v (the enrollment's initial twin)", r.Desired, want.Desired)
	}
	ctx := ctxT(t)
	d, err := sim.Hub(want.AssignedHub).GetDevice(ctx, want.DeviceID)
	if err != nil {
		t.Fatalf("device not on its assigned hub: %v", err)
	}
	if d.Authentication == nil || d.Authentication.Type != hub.AuthSAS {
		t.Errorf("device auth on the hub: %+v", d.Authentication)
	}
	ev := waitEvent(t, events, func(ev hub.Event) bool { return ev.Properties["marker"] == marker })
	if ev.DeviceID != want.DeviceID || ev.Hub != want.AssignedHub {
		t.Errorf("event from %s on %s, want %s on %s", ev.DeviceID, ev.Hub, want.DeviceID, want.AssignedHub)
	}
	if st, ok := sim.DPS().RegistrationState(want.RegistrationID); !ok || st.AssignedHub != want.AssignedHub || st.DeviceID != want.DeviceID {
		t.Errorf("DPS registration state: %+v (found %v)", st, ok)
	}
}
