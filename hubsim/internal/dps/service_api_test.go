package dps

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestServiceEnrollmentCRUD(t *testing.T) {
	e := newEnv(t, nil)
	// Create: keys left empty are generated.
	r := e.service(http.MethodPut, "/enrollments/dev1?api-version=2021-10-01", nil, IndividualEnrollment{
		RegistrationID: "dev1", Attestation: &AttestationMechanism{Type: AttestationSymmetricKey},
		ReprovisionPolicy: &ReprovisionPolicy{boolPtr(true), boolPtr(false)},
	})
	if r.status != http.StatusOK {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var created IndividualEnrollment
	r.decode(t, &created)
	if created.ETag == "" || created.ProvisioningStatus != ProvisioningEnabled || created.CreatedDateTimeUTC == nil ||
		len(created.Attestation.SymmetricKey.PrimaryKey) != 88 || created.Attestation.SymmetricKey.SecondaryKey == "" {
		t.Fatalf("created %s", r.body)
	}
	// Get.
	r = e.service(http.MethodGet, "/enrollments/dev1?api-version=2021-10-01", nil, nil)
	var got IndividualEnrollment
	r.decode(t, &got)
	if r.status != http.StatusOK || got.ETag != created.ETag {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	// Update with a stale etag: 412; with the current one: 200 and a new etag.
	got.DeviceID = "renamed"
	if r = e.service(http.MethodPut, "/enrollments/dev1", map[string]string{"If-Match": `"stale"`}, got); r.status != http.StatusPreconditionFailed {
		t.Fatalf("stale etag: %d %s", r.status, r.body)
	}
	r = e.service(http.MethodPut, "/enrollments/dev1", map[string]string{"If-Match": got.ETag}, got)
	var updated IndividualEnrollment
	r.decode(t, &updated)
	if r.status != http.StatusOK || updated.ETag == got.ETag || updated.DeviceID != "renamed" || !updated.CreatedDateTimeUTC.Equal(created.CreatedDateTimeUTC.Time) {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	// Path and body disagree: 400. Bad attestation: 400.
	if r = e.service(http.MethodPut, "/enrollments/dev2", nil, got); r.status != http.StatusBadRequest {
		t.Errorf("id mismatch: %d", r.status)
	}
	if r = e.service(http.MethodPut, "/enrollments/dev3", nil, IndividualEnrollment{RegistrationID: "dev3", Attestation: &AttestationMechanism{Type: "magic"}}); r.status != http.StatusBadRequest {
		t.Errorf("bad attestation: %d", r.status)
	}
	// Attestation mechanism.
	r = e.service(http.MethodPost, "/enrollments/dev1/attestationmechanism?api-version=2021-10-01", nil, nil)
	var att AttestationMechanism
	r.decode(t, &att)
	if r.status != http.StatusOK || att.Type != AttestationSymmetricKey || att.SymmetricKey.PrimaryKey != created.Attestation.SymmetricKey.PrimaryKey {
		t.Errorf("attestation: %d %s", r.status, r.body)
	}
	// Delete with a stale etag, then for real, then again.
	if r = e.service(http.MethodDelete, "/enrollments/dev1", map[string]string{"If-Match": `"nope"`}, nil); r.status != http.StatusPreconditionFailed {
		t.Errorf("delete stale: %d", r.status)
	}
	if r = e.service(http.MethodDelete, "/enrollments/dev1", map[string]string{"If-Match": updated.ETag}, nil); r.status != http.StatusNoContent {
		t.Errorf("delete: %d %s", r.status, r.body)
	}
	if r = e.service(http.MethodGet, "/enrollments/dev1", nil, nil); r.status != http.StatusNotFound || r.header.Get("x-ms-error-code") != "404201" {
		t.Errorf("get deleted: %d %v", r.status, r.header)
	}
	if r = e.service(http.MethodDelete, "/enrollments/dev1", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("delete twice: %d", r.status)
	}
}

func TestServiceEnrollmentGroups(t *testing.T) {
	e := newEnv(t, nil)
	g := EnrollmentGroup{EnrollmentGroupID: "fleet", Attestation: &AttestationMechanism{Type: AttestationSymmetricKey, SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: key1, SecondaryKey: key2}}}
	r := e.service(http.MethodPut, "/enrollmentGroups/fleet?api-version=2021-10-01", nil, g)
	if r.status != http.StatusOK {
		t.Fatalf("create group: %d %s", r.status, r.body)
	}
	// The Node client asks for the attestation with a lower-case collection name.
	r = e.service(http.MethodPost, "/enrollmentgroups/fleet/attestationmechanism?api-version=2021-10-01", nil, nil)
	var att AttestationMechanism
	r.decode(t, &att)
	if r.status != http.StatusOK || att.SymmetricKey.PrimaryKey != key1 {
		t.Fatalf("attestation: %d %s", r.status, r.body)
	}
	// Devices of the group and the registration-state API.
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("gw-%d", i)
		dk, _ := DeriveGroupKey(key1, id)
		e.provision(id, dk)
	}
	r = e.service(http.MethodPost, "/registrations/fleet/query?api-version=2021-10-01", map[string]string{"x-ms-max-item-count": "2"}, QuerySpecification{Query: "*"})
	var page []DeviceRegistrationState
	r.decode(t, &page)
	if r.status != http.StatusOK || len(page) != 2 || r.header.Get("x-ms-continuation") == "" || r.header.Get("x-ms-item-type") != "DeviceRegistration" {
		t.Fatalf("registration query: %d %v %s", r.status, r.header, r.body)
	}
	r = e.service(http.MethodGet, "/registrations/gw-1?api-version=2021-10-01", nil, nil)
	var st DeviceRegistrationState
	r.decode(t, &st)
	if r.status != http.StatusOK || st.Status != StatusAssigned || st.RegistrationID != "gw-1" {
		t.Fatalf("get registration: %d %s", r.status, r.body)
	}
	if r = e.service(http.MethodDelete, "/registrations/gw-1", map[string]string{"If-Match": st.ETag}, nil); r.status != http.StatusNoContent {
		t.Errorf("delete registration: %d %s", r.status, r.body)
	}
	if r = e.service(http.MethodGet, "/registrations/gw-1", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("deleted registration: %d", r.status)
	}
	if r = e.service(http.MethodDelete, "/enrollmentGroups/fleet", nil, nil); r.status != http.StatusNoContent {
		t.Errorf("delete group: %d", r.status)
	}
}

func TestServiceQueryPaging(t *testing.T) {
	e := newEnv(t, nil)
	for i := 0; i < 5; i++ {
		e.mustPut(symmetricEnrollment(fmt.Sprintf("dev%d", i), key1))
	}
	var seen []string
	cont := ""
	for pages := 0; pages < 10; pages++ {
		h := map[string]string{"x-ms-max-item-count": "2"}
		if cont != "" {
			h["x-ms-continuation"] = cont
		}
		r := e.service(http.MethodPost, "/enrollments/query?api-version=2021-10-01", h, QuerySpecification{Query: "*"})
		if r.status != http.StatusOK || r.header.Get("x-ms-item-type") != "Enrollment" || r.header.Get("x-ms-max-item-count") != "2" {
			t.Fatalf("query: %d %v %s", r.status, r.header, r.body)
		}
		var items []IndividualEnrollment
		r.decode(t, &items)
		for _, it := range items {
			seen = append(seen, it.RegistrationID)
		}
		// The last page carries no continuation header at all (Node's
		// hasMoreResults tests for its absence).
		if _, more := r.header["X-Ms-Continuation"]; !more {
			break
		}
		cont = r.header.Get("x-ms-continuation")
	}
	if fmt.Sprint(seen) != "[dev0 dev1 dev2 dev3 dev4]" {
		t.Errorf("paged through %v", seen)
	}
	if r := e.service(http.MethodPost, "/enrollments/query", map[string]string{"x-ms-continuation": "garbage!"}, QuerySpecification{Query: "*"}); r.status != http.StatusBadRequest {
		t.Errorf("bad continuation: %d", r.status)
	}
	// An empty collection answers [] not null.
	r := e.service(http.MethodPost, "/enrollmentGroups/query", nil, QuerySpecification{Query: "*"})
	if r.status != http.StatusOK || string(r.body) != "[]" {
		t.Errorf("empty query: %d %s", r.status, r.body)
	}
}

func TestServiceBulk(t *testing.T) {
	e := newEnv(t, nil)
	e.mustPut(symmetricEnrollment("exists", key1))
	r := e.service(http.MethodPost, "/enrollments/?api-version=2021-10-01", nil, BulkEnrollmentOperation{Mode: BulkCreate, Enrollments: []IndividualEnrollment{
		symmetricEnrollment("new1", key1), symmetricEnrollment("exists", key1), symmetricEnrollment("new2", key1),
	}})
	var res BulkEnrollmentOperationResult
	r.decode(t, &res)
	if r.status != http.StatusOK || res.IsSuccessful || len(res.Errors) != 1 || res.Errors[0].RegistrationID != "exists" || res.Errors[0].ErrorCode != codeConflict {
		t.Fatalf("bulk create: %d %s", r.status, r.body)
	}
	if _, ok := e.svc.GetEnrollment("new2"); !ok {
		t.Error("bulk create skipped an item after a failure")
	}
	stale := symmetricEnrollment("new1", key1)
	stale.ETag = `"stale"`
	r = e.service(http.MethodPost, "/enrollments", nil, BulkEnrollmentOperation{Mode: BulkUpdateIfMatchETag, Enrollments: []IndividualEnrollment{stale}})
	r.decode(t, &res)
	if res.IsSuccessful || len(res.Errors) != 1 || res.Errors[0].ErrorCode != codePreconditionFailed {
		t.Errorf("bulk updateIfMatchETag: %s", r.body)
	}
	r = e.service(http.MethodPost, "/enrollments", nil, BulkEnrollmentOperation{Mode: BulkDelete, Enrollments: []IndividualEnrollment{{RegistrationID: "new1"}, {RegistrationID: "new2"}}})
	r.decode(t, &res)
	if !res.IsSuccessful || len(e.svc.Enrollments()) != 1 {
		t.Errorf("bulk delete: %s, left %d", r.body, len(e.svc.Enrollments()))
	}
	if r = e.service(http.MethodPost, "/enrollments", nil, BulkEnrollmentOperation{Mode: "explode", Enrollments: []IndividualEnrollment{{RegistrationID: "x"}}}); r.status != http.StatusBadRequest {
		t.Errorf("bad mode: %d", r.status)
	}
	r = e.service(http.MethodPost, "/enrollmentGroups", nil, BulkEnrollmentGroupOperation{Mode: BulkUpdate, EnrollmentGroups: []EnrollmentGroup{
		{EnrollmentGroupID: "g1", Attestation: &AttestationMechanism{Type: AttestationSymmetricKey}},
	}})
	r.decode(t, &res)
	if !res.IsSuccessful || len(e.svc.EnrollmentGroups()) != 1 {
		t.Errorf("bulk groups: %s", r.body)
	}
}

func TestServiceAuth(t *testing.T) {
	readerKey := "cmVhZGVyLWtleS1yZWFkZXIta2V5LXJlYWRlci1rZXktMTIzNDU2Nzg="
	e := newEnv(t, nil)
	e.svc.cfg.Policies = append(e.svc.cfg.Policies, policyOf2("enrollmentread", readerKey, RightEnrollmentRead))
	exp := e.clk.Now().Add(time.Hour)
	tests := []struct {
		name   string
		method string
		path   string
		token  string
		want   int
	}{
		{"no token", http.MethodGet, "/enrollments/x", "", http.StatusUnauthorized},
		{"device token", http.MethodGet, "/enrollments/x", deviceToken(e.clk, "x", key1), http.StatusUnauthorized},
		{"wrong host", http.MethodGet, "/enrollments/x", signSAS("other.azure-devices-provisioning.net", ownerKey, "provisioningserviceowner", exp, false), http.StatusUnauthorized},
		{"expired", http.MethodGet, "/enrollments/x", signSAS(testService, ownerKey, "provisioningserviceowner", e.clk.Now().Add(-time.Second), false), http.StatusUnauthorized},
		{"reader reads", http.MethodGet, "/enrollments/x", signSAS(testService, readerKey, "enrollmentread", exp, false), http.StatusNotFound},
		{"reader cannot write", http.MethodDelete, "/enrollments/x", signSAS(testService, readerKey, "enrollmentread", exp, false), http.StatusUnauthorized},
		{"reader cannot read registrations", http.MethodGet, "/registrations/x", signSAS(testService, readerKey, "enrollmentread", exp, false), http.StatusUnauthorized},
		{"owner", http.MethodGet, "/registrations/x", signSAS(testService, ownerKey, "provisioningserviceowner", exp, true), http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, nil, tc.method, e.api.URL+tc.path, map[string]string{"Authorization": tc.token}, nil)
			if r.status != tc.want {
				t.Errorf("status %d, want %d: %s", r.status, tc.want, r.body)
			}
			if tc.want == http.StatusUnauthorized && r.header.Get("x-ms-error-code") != "401002" {
				t.Errorf("x-ms-error-code %q", r.header.Get("x-ms-error-code"))
			}
		})
	}
	// Unknown routes answer 404 in the error shape and are recorded.
	if r := e.service(http.MethodPatch, "/enrollments/x", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("PATCH: %d", r.status)
	}
	if u := e.svc.Unhandled(); len(u) != 1 {
		t.Errorf("Unhandled %q", u)
	}
	e.svc.mu.Lock()
	e.svc.unhandled = nil
	e.svc.mu.Unlock()
}

// TestDeleteGroupKeepsSameNamedEnrollment: an individual enrollment and an
// enrollment group live in separate collections; deleting the group must
// not touch an individual enrollment that happens to share its ID.
func TestDeleteGroupKeepsSameNamedEnrollment(t *testing.T) {
	e := newEnv(t, nil)
	e.mustPut(symmetricEnrollment("shared", key1))
	g := EnrollmentGroup{EnrollmentGroupID: "shared", Attestation: &AttestationMechanism{Type: AttestationSymmetricKey, SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: key1, SecondaryKey: key2}}}
	if r := e.service(http.MethodPut, "/enrollmentGroups/shared", nil, g); r.status != http.StatusOK {
		t.Fatalf("create group: %d %s", r.status, r.body)
	}
	if r := e.service(http.MethodDelete, "/enrollmentGroups/shared", nil, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete group: %d %s", r.status, r.body)
	}
	if r := e.service(http.MethodGet, "/enrollments/shared", nil, nil); r.status != http.StatusOK {
		t.Errorf("individual enrollment gone after deleting the group: %d %s", r.status, r.body)
	}
	if r := e.service(http.MethodGet, "/enrollmentGroups/shared", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("group still there: %d", r.status)
	}
}
