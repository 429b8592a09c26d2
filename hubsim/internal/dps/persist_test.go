package dps

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/porthole-iot/porthole/hubsim/internal/store"
)

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// dpsState is what a restart must keep, as the service API shows it.
type dpsState struct {
	Enrollments []IndividualEnrollment
	Groups      []EnrollmentGroup
	Regs        []DeviceRegistrationState
}

func dpsSnapshot(s *Service) dpsState {
	return dpsState{Enrollments: s.Enrollments(), Groups: s.EnrollmentGroups(), Regs: s.RegistrationStates("")}
}

func TestPersistAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), store.FileName)
	st := openStore(t, path)
	e := newEnv(t, func(c *Config) { c.Store = st })

	en := symmetricEnrollment("Dev1", key1)
	en.IoTHubs, en.AllocationPolicy = []string{hubB}, AllocationStatic
	en.InitialTwin = &InitialTwin{Tags: map[string]any{"site": "lab"}}
	e.mustPut(en)
	e.mustPut(symmetricEnrollment("gone", key1))
	if err := e.svc.DeleteEnrollment("gone", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.PutEnrollmentGroup(EnrollmentGroup{EnrollmentGroupID: "fleet",
		Attestation: &AttestationMechanism{Type: AttestationSymmetricKey, SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: key1, SecondaryKey: key2}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.PutEnrollmentGroup(EnrollmentGroup{EnrollmentGroupID: "old",
		Attestation: &AttestationMechanism{Type: AttestationSymmetricKey}}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DeleteEnrollmentGroup("old", ""); err != nil {
		t.Fatal(err)
	}
	if done := e.provision("dev1", key1); done.Status != StatusAssigned {
		t.Fatalf("dev1: %+v", done)
	}
	dk, err := DeriveGroupKey(key1, "gw-1")
	if err != nil {
		t.Fatal(err)
	}
	if done := e.provision("gw-1", dk); done.Status != StatusAssigned {
		t.Fatalf("gw-1: %+v", done)
	}
	dk2, _ := DeriveGroupKey(key1, "gw-2")
	e.provision("gw-2", dk2)
	if err := e.svc.DeleteRegistrationState("gw-2", ""); err != nil {
		t.Fatal(err)
	}
	before := dpsSnapshot(e.svc)
	if len(before.Enrollments) != 1 || len(before.Groups) != 1 || len(before.Regs) != 2 {
		t.Fatalf("setup: %+v", before)
	}
	_ = e.svc.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st2 := openStore(t, path)
	e2 := newEnv(t, func(c *Config) { c.Store, c.Hubs = st2, e.hubs })
	e2.clk.Advance(e.clk.Now().Sub(e2.clk.Now()))
	after := dpsSnapshot(e2.svc)
	if !reflect.DeepEqual(before, after) {
		b, _ := json.MarshalIndent(before, "", " ")
		a, _ := json.MarshalIndent(after, "", " ")
		t.Fatalf("DPS state changed across the restart\nbefore: %s\nafter: %s", b, a)
	}
	// The devices need no new enrollment: they register again with their
	// keys, and DPS knows where their identities live (the re-registration
	// to the same hub keeps the first assignment's substatus and creation
	// time instead of starting over).
	again := e2.provision("dev1", key1)
	rs := again.RegistrationState
	if again.Status != StatusAssigned || rs.AssignedHub != hubB || rs.Substatus != SubstatusInitialAssignment {
		t.Fatalf("dev1 after restart: %+v", rs)
	}
	if first := before.Regs[0]; rs.CreatedDateTimeUTC == nil || !rs.CreatedDateTimeUTC.Equal(first.CreatedDateTimeUTC.Time) {
		t.Errorf("created %v, was %v", rs.CreatedDateTimeUTC, first.CreatedDateTimeUTC)
	}
	if got := e2.provision("gw-1", dk); got.Status != StatusAssigned || got.RegistrationState.SymmetricKey.EnrollmentGroupID != "fleet" {
		t.Fatalf("gw-1 after restart: %+v", got.RegistrationState)
	}
	if _, ok := e2.svc.GetEnrollment("gone"); ok {
		t.Error("a deleted enrollment came back")
	}
}

func TestPersistFailureRefuses(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), store.FileName))
	e := newEnv(t, func(c *Config) { c.Store = st })
	e.mustPut(symmetricEnrollment("dev1", key1))
	if _, err := e.svc.PutEnrollmentGroup(EnrollmentGroup{EnrollmentGroupID: "fleet",
		Attestation: &AttestationMechanism{Type: AttestationSymmetricKey}}); err != nil {
		t.Fatal(err)
	}
	e.provision("dev1", key1)
	before := dpsSnapshot(e.svc)
	if err := st.Close(); err != nil { // every write now fails
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		op   func() error
	}{
		{"put enrollment", func() error { _, err := e.svc.PutEnrollment(symmetricEnrollment("dev2", key1)); return err }},
		{"replace enrollment", func() error { _, err := e.svc.PutEnrollment(symmetricEnrollment("dev1", key2)); return err }},
		{"delete enrollment", func() error { return e.svc.DeleteEnrollment("dev1", "") }},
		{"put group", func() error {
			_, err := e.svc.PutEnrollmentGroup(EnrollmentGroup{EnrollmentGroupID: "g2", Attestation: &AttestationMechanism{Type: AttestationSymmetricKey}})
			return err
		}},
		{"delete group", func() error { return e.svc.DeleteEnrollmentGroup("fleet", "") }},
		{"delete registration", func() error { return e.svc.DeleteRegistrationState("dev1", "") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.op(); !errors.Is(err, store.ErrClosed) {
				t.Fatalf("err = %v, want the store's error", err)
			}
			if after := dpsSnapshot(e.svc); !reflect.DeepEqual(before, after) {
				t.Fatalf("a refused write changed DPS\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
	// A registration whose record cannot be stored fails and leaves the old record.
	if done := e.provision("dev1", key1); done.Status != StatusFailed {
		t.Fatalf("registration with a broken store: %+v", done)
	}
	if after := dpsSnapshot(e.svc); !reflect.DeepEqual(before, after) {
		t.Fatalf("a failed registration changed DPS\nbefore %+v\nafter  %+v", before, after)
	}
}
