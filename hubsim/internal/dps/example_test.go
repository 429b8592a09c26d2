package dps

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"
)

// A device registers over HTTPS with a key derived from its enrollment
// group's key, then polls its operation until it is assigned.
func ExampleHTTPAPI() {
	clk := newClock()
	svc, err := New(Config{IDScopes: []string{"0ne00000001"}, Hubs: newFakeHubs("hub-a.azure-devices.net"), Now: clk.Now})
	if err != nil {
		panic(err)
	}
	defer svc.Close()
	groupKey := "Z3JvdXAta2V5LWdyb3VwLWtleS1ncm91cC1rZXktMTIzNDU2Nzg5MA=="
	if _, err := svc.PutEnrollmentGroup(EnrollmentGroup{
		EnrollmentGroupID: "fleet",
		Attestation:       &AttestationMechanism{Type: AttestationSymmetricKey, SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: groupKey}},
	}); err != nil {
		panic(err)
	}
	deviceKey, _ := DeriveGroupKey(groupKey, "gw-1")
	token := signSAS("0ne00000001/registrations/gw-1", deviceKey, "registration", clk.Now().Add(time.Hour), false)

	h := svc.HTTP()
	call := func(method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	rec := call(http.MethodPut, "/0ne00000001/registrations/gw-1/register?api-version=2021-06-01", `{"registrationId":"gw-1"}`)
	var op RegistrationOperationStatus
	_ = json.Unmarshal(rec.Body.Bytes(), &op)
	fmt.Println(rec.Code, op.Status, "retry-after", rec.Header().Get("Retry-After"))

	rec = call(http.MethodGet, "/0ne00000001/registrations/gw-1/operations/"+op.OperationID+"?api-version=2021-06-01", "")
	_ = json.Unmarshal(rec.Body.Bytes(), &op)
	fmt.Println(rec.Code, op.Status, op.RegistrationState.AssignedHub, op.RegistrationState.Substatus)
	// Output:
	// 202 assigning retry-after 2
	// 200 assigned hub-a.azure-devices.net initialAssignment
}
