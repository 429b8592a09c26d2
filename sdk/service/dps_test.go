package service

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestDPSClient(t *testing.T) {
	f := newAuthFake(t, "provisioningserviceowner", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "api-version=2021-10-01" {
			t.Errorf("query %q", r.URL.RawQuery)
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		im := r.Header.Get("If-Match")
		switch r.Method + " " + r.URL.EscapedPath() {
		case "PUT /enrollments/dev-1":
			var e map[string]any
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatal(err)
			}
			att, _ := e["attestation"].(map[string]any)
			if e["registrationId"] != "dev-1" || att["type"] != "symmetricKey" || e["iotHubHostName"] != "hub-eu.local" {
				t.Errorf("put body %s", body)
			}
			if _, ok := e["etag"]; ok && im != "etag-1" {
				t.Errorf("conditional put If-Match %q", im)
			}
			if _, ok := e["etag"]; !ok && im != "" {
				t.Errorf("unconditional put If-Match %q", im)
			}
			_, _ = w.Write([]byte(`{"registrationId":"dev-1","etag":"etag-2","provisioningStatus":"enabled",
				"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"a2V5","secondaryKey":"a2V5Mg=="}},
				"createdDateTimeUtc":"2024-01-02T03:04:05.0000000Z"}`))
		case "GET /enrollments/missing":
			w.Header().Set("x-ms-error-code", "404201")
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"errorCode":404201,"trackingId":"t-1","message":"Enrollment not found","timestampUtc":"2024-01-01T00:00:00Z"}`))
		case "DELETE /enrollments/dev-1":
			if im != "" {
				t.Errorf("delete If-Match %q", im)
			}
			w.WriteHeader(204)
		case "PUT /enrollmentGroups/grp":
			_, _ = w.Write(body)
		case "GET /enrollmentGroups/grp":
			_, _ = w.Write([]byte(`{"enrollmentGroupId":"grp","attestation":{"type":"symmetricKey"}}`))
		case "DELETE /enrollmentGroups/grp":
			if im != "g-etag" {
				t.Errorf("group delete If-Match %q", im)
			}
			w.WriteHeader(204)
		case "GET /registrations/dev-1":
			_, _ = w.Write([]byte(`{"registrationId":"dev-1","assignedHub":"hub-eu.local","deviceId":"dev-1","status":"assigned"}`))
		case "DELETE /registrations/dev-1":
			w.WriteHeader(204)
		case "PUT /enrollments/throttled":
			w.Header().Set("Retry-After", "3")
			w.Header().Set("x-ms-error-code", "429001")
			w.WriteHeader(429)
			_, _ = w.Write([]byte(`{"errorCode":429001,"message":"slow down"}`))
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL.EscapedPath())
			w.WriteHeader(500)
		}
	})
	d := f.dps(t)
	ctx := testCtx(t)

	e, err := d.PutEnrollment(ctx, IndividualEnrollment{RegistrationID: "dev-1", IoTHubHostName: "hub-eu.local",
		Attestation: &AttestationMechanism{Type: AttestationSymmetricKey}})
	if err != nil {
		t.Fatal(err)
	}
	if e.ETag != "etag-2" || e.Attestation.SymmetricKey.PrimaryKey != "a2V5" || e.CreatedDateTimeUTC.Year() != 2024 {
		t.Errorf("enrollment %+v", e)
	}
	if s := e.Attestation.SymmetricKey.String(); strings.Contains(s, "a2V5") {
		t.Errorf("String shows the key: %s", s)
	}
	if _, err := d.PutEnrollment(ctx, IndividualEnrollment{RegistrationID: "dev-1", ETag: "etag-1",
		IoTHubHostName: "hub-eu.local", Attestation: &AttestationMechanism{Type: AttestationSymmetricKey}}); err != nil {
		t.Error(err)
	}
	_, err = d.GetEnrollment(ctx, "missing")
	var se *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &se) || se.ErrorNumber != 404201 || se.TrackingID != "t-1" ||
		se.Message != "Enrollment not found" || se.ErrorCode != "404201" {
		t.Errorf("missing: %v %+v", err, se)
	}
	if err := d.DeleteEnrollment(ctx, "dev-1", ""); err != nil {
		t.Error(err)
	}
	g, err := d.PutEnrollmentGroup(ctx, EnrollmentGroup{EnrollmentGroupID: "grp", Attestation: &AttestationMechanism{Type: AttestationSymmetricKey,
		SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: "Zw=="}}, AllocationPolicy: AllocationHashed})
	if err != nil || g.EnrollmentGroupID != "grp" || g.AllocationPolicy != "hashed" {
		t.Errorf("group %+v %v", g, err)
	}
	if g, err := d.GetEnrollmentGroup(ctx, "grp"); err != nil || g.Attestation.Type != "symmetricKey" {
		t.Errorf("get group %+v %v", g, err)
	}
	if err := d.DeleteEnrollmentGroup(ctx, "grp", "g-etag"); err != nil {
		t.Error(err)
	}
	if st, err := d.GetRegistration(ctx, "dev-1"); err != nil || st.AssignedHub != "hub-eu.local" || st.Status != "assigned" {
		t.Errorf("registration %+v %v", st, err)
	}
	if err := d.DeleteRegistration(ctx, "dev-1", ""); err != nil {
		t.Error(err)
	}
	_, err = d.PutEnrollment(ctx, IndividualEnrollment{RegistrationID: "throttled", Attestation: &AttestationMechanism{Type: AttestationSymmetricKey}})
	if !errors.Is(err, ErrThrottled) || !errors.As(err, &se) || se.ErrorCode != "ThrottlingException" || !se.HasRetryAfter || se.RetryAfter != 3*time.Second {
		t.Errorf("throttled: %v %+v", err, se)
	}
	if _, err := d.PutEnrollment(ctx, IndividualEnrollment{RegistrationID: "x"}); !errors.Is(err, ErrConfig) {
		t.Errorf("no attestation: %v", err)
	}
	if _, err := d.PutEnrollmentGroup(ctx, EnrollmentGroup{EnrollmentGroupID: "x"}); !errors.Is(err, ErrConfig) {
		t.Errorf("group without attestation: %v", err)
	}
}
