package dps

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

func TestHashedAllocation(t *testing.T) {
	e := newEnv(t, nil)
	s := e.svc
	hubs := []string{hubA, hubB, hubC}
	counts := map[string]int{}
	for i := 0; i < 600; i++ {
		counts[s.hashed(hubs, fmt.Sprintf("dev-%d", i))]++
	}
	for _, h := range hubs {
		if counts[h] < 150 || counts[h] > 250 {
			t.Errorf("hub %s got %d of 600 devices; want about 200", h, counts[h])
		}
	}
	// Stable, case-insensitive, and adding a hub moves only devices onto it.
	more := append(hubs[:3:3], "hub-d.azure-devices.net")
	moved := 0
	for i := 0; i < 600; i++ {
		id := fmt.Sprintf("dev-%d", i)
		before := s.hashed(hubs, id)
		if s.hashed(hubs, id) != before || s.hashed(hubs, "DEV-"+id[4:]) != before {
			t.Fatalf("hashing of %s is not stable", id)
		}
		if after := s.hashed(more, id); after != before {
			moved++
			if after != "hub-d.azure-devices.net" {
				t.Fatalf("%s moved from %s to %s, not to the new hub", id, before, after)
			}
		}
	}
	if moved < 100 || moved > 200 {
		t.Errorf("%d of 600 moved to the fourth hub, want about 150", moved)
	}
}

func TestHashedWeights(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HubWeights = map[string]int{hubA: 3} })
	counts := map[string]int{}
	for i := 0; i < 1000; i++ {
		counts[e.svc.hashed([]string{hubA, hubB}, fmt.Sprintf("d%d", i))]++
	}
	if counts[hubA] < 680 || counts[hubA] > 820 {
		t.Errorf("weight 3:1 gave %v", counts)
	}
}

func TestAllocationPolicies(t *testing.T) {
	tests := []struct {
		name   string
		mod    func(*Config)
		enroll func(*IndividualEnrollment)
		regID  string
		want   string
	}{
		{"static via iotHubs", nil, func(e *IndividualEnrollment) { e.AllocationPolicy = AllocationStatic; e.IoTHubs = []string{hubC} }, "d1", hubC},
		{"legacy iotHubHostName", nil, func(e *IndividualEnrollment) { e.IoTHubHostName = hubB }, "d1", hubB},
		{"hashed over iotHubs", nil, func(e *IndividualEnrollment) { e.AllocationPolicy = AllocationHashed; e.IoTHubs = []string{hubB} }, "d1", hubB},
		{"geoLatency by device region",
			func(c *Config) {
				c.HubRegions = map[string]string{hubA: "westeurope", hubB: "eastus", hubC: "westeurope"}
				c.DeviceRegions = map[string]string{"d-us": "eastus"}
			},
			func(e *IndividualEnrollment) { e.AllocationPolicy = AllocationGeoLatency }, "d-us", hubB},
		{"geoLatency by source address",
			func(c *Config) {
				c.HubRegions = map[string]string{hubA: "westeurope", hubB: "eastus", hubC: "japaneast"}
				c.SourceRegions = map[string]string{"127.0.0.0/8": "japaneast"}
			},
			func(e *IndividualEnrollment) { e.AllocationPolicy = AllocationGeoLatency }, "d-jp", hubC},
		{"default policy from config", func(c *Config) {
			c.DefaultAllocationPolicy = AllocationGeoLatency
			c.HubRegions = map[string]string{hubA: "westeurope"}
			c.DeviceRegions = map[string]string{"d-eu": "westeurope"}
		}, func(e *IndividualEnrollment) {}, "d-eu", hubA},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.mod)
			en := symmetricEnrollment(tc.regID, key1)
			tc.enroll(&en)
			e.mustPut(en)
			if got := e.provision(tc.regID, key1).RegistrationState.AssignedHub; got != tc.want {
				t.Errorf("assigned %s, want %s", got, tc.want)
			}
		})
	}
}

// webhook is a custom allocation function that records its requests.
type webhook struct {
	mu     sync.Mutex
	reqs   []map[string]any
	answer string
}

func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	w.mu.Lock()
	w.reqs = append(w.reqs, m)
	ans := w.answer
	w.mu.Unlock()
	rw.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(rw, ans)
}

func TestCustomAllocationWebhook(t *testing.T) {
	hook := &webhook{answer: `{"iotHubHostName":"` + hubB + `","initialTwin":{"tags":{"class":"toaster"},"properties":{"desired":{"temp":180}}}}`}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	e := newEnv(t, func(c *Config) { c.HTTPClient = srv.Client() })
	if _, err := e.svc.PutEnrollmentGroup(EnrollmentGroup{
		EnrollmentGroupID:          "toasters",
		Attestation:                &AttestationMechanism{Type: AttestationSymmetricKey, SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: key1}},
		AllocationPolicy:           AllocationCustom,
		IoTHubs:                    []string{hubA, hubB},
		CustomAllocationDefinition: &CustomAllocationDefinition{WebhookURL: srv.URL + "/api/alloc", APIVersion: "2021-10-01"},
	}); err != nil {
		t.Fatal(err)
	}
	dk, _ := DeriveGroupKey(key1, "toaster-7")
	done := e.provision("toaster-7", dk)
	if done.RegistrationState.AssignedHub != hubB {
		t.Fatalf("assigned %+v", done.RegistrationState)
	}
	if tw := e.hubs.twin(hubB, "toaster-7"); tw.Tags["class"] != "toaster" || tw.Desired["temp"] != 180.0 {
		t.Errorf("webhook twin not applied: %+v", tw)
	}
	// Second registration: the runtime context names the current hub and device.
	e.hubs.setReported(hubB, "toaster-7", "x", 1)
	hook.mu.Lock()
	hook.answer = `{"iotHubHostName":"` + hubA + `"}`
	hook.mu.Unlock()
	done = e.provision("toaster-7", dk)
	if rs := done.RegistrationState; rs.AssignedHub != hubA || rs.Substatus != SubstatusDeviceDataMigrated {
		t.Fatalf("second %+v", rs)
	}
	// A hub that is not linked fails the registration.
	hook.mu.Lock()
	hook.answer = `{"iotHubHostName":"` + hubC + `"}`
	hook.mu.Unlock()
	if done = e.provision("toaster-7", dk); done.Status != StatusFailed || done.RegistrationState.ErrorCode != codeAllocationFailed {
		t.Fatalf("unlinked hub: %+v", done.RegistrationState)
	}

	hook.mu.Lock()
	defer hook.mu.Unlock()
	if len(hook.reqs) != 3 {
		t.Fatalf("webhook called %d times, want 3", len(hook.reqs))
	}
	first, second := hook.reqs[0], hook.reqs[1]
	grp, _ := first["enrollmentGroup"].(map[string]any)
	if grp == nil || grp["enrollmentGroupId"] != "toasters" || first["individualEnrollment"] != nil {
		t.Errorf("enrollmentGroup in request: %v", first)
	}
	if att, _ := grp["attestation"].(map[string]any); att["type"] != "symmetricKey" || att["symmetricKey"] != nil {
		t.Errorf("attestation must travel without keys: %v", att)
	}
	rc, _ := first["deviceRuntimeContext"].(map[string]any)
	if rc["registrationId"] != "toaster-7" || rc["currentIotHubHostName"] != nil || rc["symmetricKey"] == nil {
		t.Errorf("first deviceRuntimeContext %v", rc)
	}
	if lh, _ := first["linkedHubs"].([]any); len(lh) != 2 || lh[0] != hubA || lh[1] != hubB {
		t.Errorf("linkedHubs %v", first["linkedHubs"])
	}
	rc2, _ := second["deviceRuntimeContext"].(map[string]any)
	if rc2["currentIotHubHostName"] != hubB || rc2["currentDeviceId"] != "toaster-7" {
		t.Errorf("second deviceRuntimeContext %v", rc2)
	}
}

func TestCustomWebhookErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"500", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }},
		{"not json", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "<html>") }},
		{"no hub", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{}`) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			e := newEnv(t, func(c *Config) { c.HTTPClient = srv.Client() })
			en := symmetricEnrollment("dev1", key1)
			en.AllocationPolicy = AllocationCustom
			en.CustomAllocationDefinition = &CustomAllocationDefinition{WebhookURL: srv.URL, APIVersion: "2021-10-01"}
			e.mustPut(en)
			if done := e.provision("dev1", key1); done.Status != StatusFailed {
				t.Errorf("status %s", done.Status)
			}
		})
	}
}
