package dps

import (
	"encoding/json"
	"testing"
	"time"
)

// TestWireConstants pins every wire string to the bytes its source shows.
func TestWireConstants(t *testing.T) {
	pins := []struct{ got, want, source string }{
		// Azure/azure-iot-sdk-c provisioning_client/src/prov_transport_mqtt_common.c, azure-iot-sdk-node provisioning/transport/mqtt/src/mqtt.ts
		{topicResFilter, "$dps/registrations/res/#", "c/node mqtt"},
		{topicResPrefix, "$dps/registrations/res/", "c/node mqtt"},
		{topicRegisterPrefix + "?$rid=1", "$dps/registrations/PUT/iotdps-register/?$rid=1", "c/node mqtt"},
		{topicPollPrefix + "?$rid=2&operationId=op", "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=op", "c/node mqtt"},
		{mqttRetryAfterKey, "retry-after", "node mqtt.ts"},
		{mqttUsernameAPIVersion, "/api-version=", "c prov_transport_mqtt_common.c"},
		// rest-api-specs .../device/models.tsp
		{headerErrorCode, "x-ms-error-code", "models.tsp"},
		{headerRetryAfter, "Retry-After", "models.tsp retry-after"},
		{StatusUnassigned + StatusAssigning + StatusAssigned + StatusFailed + StatusDisabled, "unassignedassigningassignedfaileddisabled", "models.tsp EnrollmentStatus"},
		{SubstatusInitialAssignment, "initialAssignment", "models.tsp"},
		{SubstatusDeviceDataMigrated, "deviceDataMigrated", "models.tsp"},
		{SubstatusDeviceDataReset, "deviceDataReset", "models.tsp"},
		{SubstatusReprovisionedToInitialAssignment, "reprovisionedToInitialAssignment", "models.tsp"},
		// azure-iot-sdk-node provisioning/service/src/query.ts, service.json
		{headerContinuation, "x-ms-continuation", "query.ts"},
		{headerMaxItemCount, "x-ms-max-item-count", "service.json"},
		{headerItemType, "x-ms-item-type", "service.json"},
		// service.json enums
		{AllocationHashed + AllocationGeoLatency + AllocationStatic + AllocationCustom, "hashedgeoLatencystaticcustom", "service.json allocationPolicy"},
		{AttestationNone + AttestationTPM + AttestationX509 + AttestationSymmetricKey, "nonetpmx509symmetricKey", "service.json AttestationMechanism.type"},
		{BulkCreate + BulkUpdate + BulkUpdateIfMatchETag + BulkDelete, "createupdateupdateIfMatchETagdelete", "service.json BulkEnrollmentOperation.mode"},
		{deviceKeyName, "registration", "node symmetric_key.ts skn"},
		// device routes.tsp, c prov_transport_http_client.c; service.json; node provisioningserviceclient.ts
		{"/0ne/" + segRegistrations + "/d/" + segRegister, "/0ne/registrations/d/register", "c PROV_REGISTRATION_URI_FMT"},
		{"/0ne/" + segRegistrations + "/d/" + segOperations + "/o", "/0ne/registrations/d/operations/o", "c PROV_OP_STATUS_URI_FMT"},
		{"/" + segEnrollments + "/" + segQuery, "/enrollments/query", "service.json"},
		{"/" + segEnrollmentGroups + "/g/" + segAttestationMechanism, "/enrollmentGroups/g/attestationmechanism", "service.json"},
		{"/" + segEnrollmentGroupsNode + "/g/" + segAttestationMechanism, "/enrollmentgroups/g/attestationmechanism", "node provisioningserviceclient.ts"},
		{legacyStickyAPIVersion, "2018-04-01", "concepts-device-reprovision.md"},
		{RightEnrollmentRead + RightEnrollmentWrite + RightRegistrationStatusRead + RightRegistrationStatusWrite + RightServiceConfig,
			"EnrollmentReadEnrollmentWriteRegistrationStatusReadRegistrationStatusWriteServiceConfig", "how-to-control-access.md"},
	}
	for _, p := range pins {
		if p.got != p.want {
			t.Errorf("%s: got %q, want %q", p.source, p.got, p.want)
		}
	}
	if codeUnauthorized != 401002 || codeThrottled != 429001 {
		t.Errorf("error codes moved: %d %d", codeUnauthorized, codeThrottled)
	}
}

// TestJSONShapes pins the camelCase field names the SDKs read.
func TestJSONShapes(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 600000000, time.UTC)
	res := RegistrationOperationStatus{OperationID: "4.x", Status: StatusAssigned, RegistrationState: &DeviceRegistrationResult{
		RegistrationID: "dev1", CreatedDateTimeUTC: ts(at), AssignedHub: "h", DeviceID: "d", Status: StatusAssigned,
		Substatus: SubstatusInitialAssignment, LastUpdatedDateTimeUTC: ts(at), ETag: `"e"`, Payload: json.RawMessage(`{"a":1}`),
		SymmetricKey: &SymmetricKeyRegistrationResult{EnrollmentGroupID: "g"},
	}}
	b, _ := json.Marshal(res)
	want := `{"operationId":"4.x","status":"assigned","registrationState":{"symmetricKey":{"enrollmentGroupId":"g"},"registrationId":"dev1","createdDateTimeUtc":"2025-01-02T03:04:05.6000000Z","assignedHub":"h","deviceId":"d","status":"assigned","substatus":"initialAssignment","lastUpdatedDateTimeUtc":"2025-01-02T03:04:05.6000000Z","etag":"\"e\"","payload":{"a":1}}}`
	if string(b) != want {
		t.Errorf("RegistrationOperationStatus JSON\n got %s\nwant %s", b, want)
	}
	ed, _ := json.Marshal(ErrorDetails{ErrorCode: 401002, TrackingID: "t", Message: "m", TimestampUTC: Timestamp{at}})
	if string(ed) != `{"errorCode":401002,"trackingId":"t","message":"m","timestampUtc":"2025-01-02T03:04:05.6000000Z"}` {
		t.Errorf("ErrorDetails JSON %s", ed)
	}
	var ar AllocationResponse
	if err := json.Unmarshal([]byte(`{"iotHubHostname":"hub-x"}`), &ar); err != nil || ar.IoTHubHostName != "hub-x" {
		t.Errorf("AllocationResponse with the doc table's casing: %+v %v", ar, err)
	}
}

func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{"0ne1/registrations/d/api-version=2019-03-31&ClientVersion=x", "h/d/?api-version=1", "", "/registrations//api-version=", "a/registrations/b/api-version=c/api-version=d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		scope, reg, _, ok := parseUsername(s)
		if ok && (scope == "" || reg == "" || deviceResource(scope, reg) == "") {
			t.Fatalf("accepted %q with empty parts", s)
		}
	})
}

func FuzzParseRequestTopic(f *testing.F) {
	for _, s := range []string{
		"$dps/registrations/PUT/iotdps-register/?$rid=1",
		"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=4.a.b",
		"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2",
		"$dps/registrations/PUT/iotdps-register/?%zz", "$iothub/twin/GET/?$rid=1", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kind, rid, op, err := parseRequestTopic(s)
		if err != nil {
			return
		}
		if rid == "" || (kind == kindPoll && op == "") {
			t.Fatalf("accepted %q without $rid/operationId", s)
		}
	})
}

func FuzzParseDeviceBody(f *testing.F) {
	for _, s := range []string{"", " ", "null", "{}", `{"registrationId":"d","payload":{"a":[1,2]}}`, `{"tpm":{"endorsementKey":"x"}}`, `{`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		dr, err := parseDeviceBody(b)
		if err == nil && dr.Payload != nil && !json.Valid(dr.Payload) {
			t.Fatalf("invalid payload kept from %q", b)
		}
	})
}

func FuzzContinuation(f *testing.F) {
	f.Add(encodeContinuation(0))
	f.Add(encodeContinuation(12345))
	f.Add("garbage!")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := decodeContinuation(s)
		if err == nil && n < 0 {
			t.Fatalf("negative offset from %q", s)
		}
		if err == nil && decodeMust(t, encodeContinuation(n)) != n {
			t.Fatalf("round trip of %d", n)
		}
	})
}

func decodeMust(t *testing.T, s string) int {
	n, err := decodeContinuation(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func FuzzTimestamp(f *testing.F) {
	for _, s := range []string{`"2025-10-01T17:42:04.760Z"`, `"2022-07-05T21:27:16.8123235Z"`, `"0001-01-01T00:00:00"`, `null`, `12`, `"x"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ts Timestamp
		if err := ts.UnmarshalJSON(b); err != nil {
			t.Fatalf("lenient unmarshal failed on %q: %v", b, err)
		}
		out, err := ts.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var back Timestamp
		_ = back.UnmarshalJSON(out)
		if !back.Equal(ts.Truncate(100*time.Nanosecond)) && ts.Year() > 0 && ts.Year() < 10000 {
			t.Fatalf("round trip %q → %s → %v", b, out, back)
		}
	})
}
