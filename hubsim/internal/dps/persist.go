package dps

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/store"
)

// Persistence: with Config.Store set, individual enrollments, enrollment
// groups and registration records are written to the store (under Service.mu,
// before the change is visible or acknowledged) and loaded back by New.
// Operations, quota windows and statistics are not stored: they are about
// the running process.

// registrationRecord is a registration as stored: its exported fields
// inline, plus where the device's identity lives.
type registrationRecord struct {
	registration
	CurrentHub      string   `json:"currentHub,omitempty"`
	CurrentDeviceID string   `json:"currentDeviceId,omitempty"`
	History         []string `json:"history,omitempty"`
}

// persist runs fn in one store transaction; without a store it does nothing.
// The caller's context is not used: a client that goes away must not leave
// memory and disk apart.
func (s *Service) persist(fn func(tx *store.Tx) error) error {
	if s.cfg.Store == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.cfg.Store.Update(ctx, fn)
}

func putJSON(tx *store.Tx, k store.Kind, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("dps: encoding %s: %w", key, err)
	}
	return tx.PutRecord(k, key, b)
}

func (r *registration) record() registrationRecord {
	return registrationRecord{registration: *r, CurrentHub: r.currentHub,
		CurrentDeviceID: r.currentDeviceID, History: r.history}
}

// persistRegistration writes a registration record.
func (s *Service) persistRegistration(key string, r *registration) error {
	return s.persist(func(tx *store.Tx) error { return putJSON(tx, store.Registrations, key, r.record()) })
}

// load fills the service's maps from the store.
func (s *Service) load(ctx context.Context, st *store.Store) error {
	enrollments, err := st.Records(ctx, store.Enrollments)
	if err != nil {
		return err
	}
	for _, r := range enrollments {
		var e IndividualEnrollment
		if err := json.Unmarshal(r.Doc, &e); err != nil {
			return fmt.Errorf("dps: stored enrollment %s: %w", r.Key, err)
		}
		s.enrollments[r.Key] = &e
	}
	groups, err := st.Records(ctx, store.Groups)
	if err != nil {
		return err
	}
	for _, r := range groups {
		var g EnrollmentGroup
		if err := json.Unmarshal(r.Doc, &g); err != nil {
			return fmt.Errorf("dps: stored enrollment group %s: %w", r.Key, err)
		}
		s.groups[r.Key] = &g
	}
	regs, err := st.Records(ctx, store.Registrations)
	if err != nil {
		return err
	}
	for _, r := range regs {
		var rec registrationRecord
		if err := json.Unmarshal(r.Doc, &rec); err != nil {
			return fmt.Errorf("dps: stored registration %s: %w", r.Key, err)
		}
		reg := rec.registration
		reg.currentHub, reg.currentDeviceID, reg.history = rec.CurrentHub, rec.CurrentDeviceID, rec.History
		s.regs[r.Key] = &reg
	}
	return nil
}
