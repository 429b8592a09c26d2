package dps

import (
	"testing"
)

func TestReprovisionPolicies(t *testing.T) {
	initial := &InitialTwin{Tags: map[string]any{"site": "lab"}, Properties: &InitialTwinProperties{Desired: map[string]any{"mode": "factory"}}}
	tests := []struct {
		name       string
		policy     *ReprovisionPolicy
		apiVersion string
		second     []string // the enrollment's iotHubs at the second registration
		wantHub    string
		wantSub    string
		wantTwin   string // "migrated", "initial" or "kept"
		wantRemove bool
	}{
		{"default migrates", nil, "2021-06-01", []string{hubB}, hubB, SubstatusDeviceDataMigrated, "migrated", true},
		{"migrate", &ReprovisionPolicy{boolPtr(true), boolPtr(true)}, "2021-06-01", []string{hubB}, hubB, SubstatusDeviceDataMigrated, "migrated", true},
		{"reset", &ReprovisionPolicy{boolPtr(true), boolPtr(false)}, "2021-06-01", []string{hubB}, hubB, SubstatusDeviceDataReset, "initial", true},
		{"never", &ReprovisionPolicy{boolPtr(false), boolPtr(true)}, "2021-06-01", []string{hubB}, hubA, SubstatusInitialAssignment, "kept", false},
		{"never without migrate", &ReprovisionPolicy{boolPtr(false), boolPtr(false)}, "2021-06-01", []string{hubB}, hubA, SubstatusInitialAssignment, "kept", false},
		{"legacy api, no policy: sticky", nil, "2018-04-01", []string{hubB}, hubA, SubstatusInitialAssignment, "kept", false},
		{"legacy api older: sticky", nil, "2017-11-15", []string{hubB}, hubA, SubstatusInitialAssignment, "kept", false},
		{"legacy api, policy set: policy wins", &ReprovisionPolicy{boolPtr(true), boolPtr(true)}, "2018-04-01", []string{hubB}, hubB, SubstatusDeviceDataMigrated, "migrated", true},
		{"reset on the same hub (factory reset)", &ReprovisionPolicy{boolPtr(true), boolPtr(false)}, "2021-06-01", []string{hubA}, hubA, SubstatusDeviceDataReset, "initial", false},
		{"migrate on the same hub keeps data", nil, "2021-06-01", []string{hubA}, hubA, SubstatusInitialAssignment, "kept", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			en := symmetricEnrollment("dev1", key1)
			en.AllocationPolicy = AllocationStatic
			en.IoTHubs = []string{hubA}
			en.InitialTwin = initial
			en.ReprovisionPolicy = tc.policy
			e.mustPut(en)
			first := e.provisionAPI("dev1", key1, tc.apiVersion)
			if first.RegistrationState.AssignedHub != hubA || first.RegistrationState.Substatus != SubstatusInitialAssignment {
				t.Fatalf("first registration %+v", first.RegistrationState)
			}
			// Life on hub A: the device reports, the back end tags and configures.
			e.hubs.setReported(hubA, "dev1", "fw", "1.2")
			tw := e.hubs.twin(hubA, "dev1")
			tw.Tags["owner"] = "ops"
			tw.Desired["mode"] = "run"
			if err := e.hubs.ImportTwin(hubA, "dev1", tw); err != nil {
				t.Fatal(err)
			}

			en.IoTHubs = tc.second
			e.mustPut(en)
			second := e.provisionAPI("dev1", key1, tc.apiVersion)
			rs := second.RegistrationState
			if second.Status != StatusAssigned || rs.AssignedHub != tc.wantHub || rs.Substatus != tc.wantSub {
				t.Fatalf("second registration: hub %s substatus %s, want %s %s", rs.AssignedHub, rs.Substatus, tc.wantHub, tc.wantSub)
			}
			got := e.hubs.twin(tc.wantHub, "dev1")
			switch tc.wantTwin {
			case "migrated", "kept":
				if got.Reported["fw"] != "1.2" || got.Tags["owner"] != "ops" || got.Desired["mode"] != "run" {
					t.Errorf("twin should carry hub A's data, got %+v", got)
				}
			case "initial":
				if len(got.Reported) != 0 || got.Tags["owner"] != nil || got.Tags["site"] != "lab" || got.Desired["mode"] != "factory" {
					t.Errorf("twin should be the enrollment's initial twin, got %+v", got)
				}
			}
			_, stillOnA := e.hubs.device(hubA, "dev1")
			if tc.wantRemove == stillOnA {
				t.Errorf("device on hub A after move: %v, want removed=%v", stillOnA, tc.wantRemove)
			}
		})
	}
}

func TestReprovisionBackToPreviousHub(t *testing.T) {
	e := newEnv(t, nil)
	en := symmetricEnrollment("dev1", key1)
	en.AllocationPolicy = AllocationStatic
	steps := []struct {
		hub     string
		wantSub string
	}{
		{hubA, SubstatusInitialAssignment},
		{hubB, SubstatusDeviceDataMigrated},
		{hubC, SubstatusDeviceDataMigrated},
		{hubA, SubstatusReprovisionedToInitialAssignment},
		{hubB, SubstatusReprovisionedToInitialAssignment},
	}
	for i, st := range steps {
		en.IoTHubs = []string{st.hub}
		e.mustPut(en)
		if i == 1 {
			e.hubs.setReported(hubA, "dev1", "boots", 1.0)
		}
		done := e.provision("dev1", key1)
		if rs := done.RegistrationState; rs.AssignedHub != st.hub || rs.Substatus != st.wantSub {
			t.Fatalf("step %d: %s %s, want %s %s", i, rs.AssignedHub, rs.Substatus, st.hub, st.wantSub)
		}
		if i >= 1 && e.hubs.twin(st.hub, "dev1").Reported["boots"] != 1.0 {
			t.Errorf("step %d: reported properties not migrated", i)
		}
	}
	if n := len(e.hubs.removed); n != 4 {
		t.Errorf("removed %d old identities, want 4: %v", n, e.hubs.removed)
	}
}

func TestDeleteRegistrationMakesNextAssignmentInitial(t *testing.T) {
	e := newEnv(t, nil)
	e.mustPut(symmetricEnrollment("dev1", key1))
	e.provision("dev1", key1)
	if err := e.svc.DeleteRegistrationState("dev1", ""); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.svc.RegistrationState("dev1"); ok {
		t.Fatal("registration state survived delete")
	}
	if done := e.provision("dev1", key1); done.RegistrationState.Substatus != SubstatusInitialAssignment {
		t.Errorf("substatus %s", done.RegistrationState.Substatus)
	}
}

func TestHubFailureFailsRegistration(t *testing.T) {
	e := newEnv(t, nil)
	en := symmetricEnrollment("dev1", key1)
	en.IoTHubs = []string{"hub-missing.azure-devices.net"}
	e.mustPut(en)
	done := e.provision("dev1", key1)
	rs := done.RegistrationState
	if done.Status != StatusFailed || rs.Status != StatusFailed || rs.ErrorCode == 0 || rs.ErrorMessage == "" || rs.AssignedHub != "" {
		t.Fatalf("failed registration %+v", rs)
	}
}
