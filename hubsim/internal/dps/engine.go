package dps

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/ident"
)

type opKind int

const (
	kindRegister opKind = iota
	kindPoll
	kindLookup
)

func (k opKind) String() string {
	switch k {
	case kindRegister:
		return "register"
	case kindPoll:
		return "poll"
	}
	return "lookup"
}

// deviceRequest is one device call, from HTTPS or MQTT.
type deviceRequest struct {
	kind        opKind
	scope       string
	regID       string
	apiVersion  string
	operationID string
	creds       deviceCreds
	body        []byte
	remote      string // client address, host:port or host
	transport   string
}

// reply is the answer, rendered by the transport.
type reply struct {
	status     int
	body       any
	retryAfter int // whole seconds; 0 = none
	errorCode  int // non-zero for error answers
}

func errReply(status, code int, msg string, now time.Time) reply {
	return reply{status: status, errorCode: code, body: ErrorDetails{
		ErrorCode:    code,
		TrackingID:   randomHex(16),
		Message:      msg,
		TimestampUTC: Timestamp{now.UTC()},
	}}
}

// seconds rounds d up to whole seconds, at least 1.
func seconds(d time.Duration) int {
	n := int((d + time.Second - 1) / time.Second)
	if n < 1 {
		n = 1
	}
	return n
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "error"
}

// handleDevice runs one device request through faults, authentication,
// quota and the registration engine.
func (s *Service) handleDevice(ctx context.Context, req deviceRequest) reply {
	now := s.now()
	regKey := keyOf(req.regID)
	toldKey := keyOf(req.scope) + "/" + regKey
	log := s.log.With("device", req.regID, "op", req.kind.String(), "transport", req.transport)

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errReply(http.StatusServiceUnavailable, 503000, "service is shutting down", now)
	}
	sec := s.stats.second(now)
	sec.Requests++
	s.stats.Requests++
	switch req.kind {
	case kindRegister:
		s.stats.Registrations++
	case kindLookup:
		s.stats.Lookups++
	case kindPoll:
		s.stats.Polls++
		if t, ok := s.pollTold[req.operationID]; ok && now.Before(t) {
			s.stats.EarlyPolls++
		}
	}
	if t, ok := s.told[toldKey]; ok {
		if now.Before(t) {
			s.stats.Early++
		}
		delete(s.told, toldKey)
	}
	s.mu.Unlock()

	if f := s.cfg.Faults; f != nil {
		if f.Fail5xx != nil {
			if st, ok := f.Fail5xx(req.regID); ok {
				s.mu.Lock()
				s.stats.Fault5xx++
				s.mu.Unlock()
				return errReply(st, st*1000, "injected failure", now)
			}
		}
		if f.Throttle != nil {
			if d, ok := f.Throttle(req.regID); ok {
				r := errReply(http.StatusTooManyRequests, codeThrottled, "throttled (injected)", now)
				r.retryAfter = seconds(d)
				s.mu.Lock()
				s.stats.FaultThrottle++
				s.stats.second(now).Throttled++
				s.told[toldKey] = now.Add(time.Duration(r.retryAfter) * time.Second)
				s.mu.Unlock()
				return r
			}
		}
	}

	if !s.knownScope(req.scope) {
		return errReply(http.StatusNotFound, codeNotFound, "unknown ID scope", now)
	}
	if !validRegistrationID(req.regID) {
		return errReply(http.StatusBadRequest, codeBadRequest, "invalid registration ID", now)
	}
	m, err := s.authenticate(req.scope, req.regID, req.creds, now)
	if err != nil {
		log.Info("dps: device not authorized")
		s.countOutcome(req.kind, OutcomeUnauthorized)
		return errReply(http.StatusUnauthorized, codeUnauthorized, "Unauthorized", now)
	}

	s.mu.Lock()
	quota := s.cfg.Quota // SetQuota may change it
	s.mu.Unlock()
	counts := req.kind == kindRegister || (req.kind == kindLookup && !quota.ExemptLookups)
	if counts && quota.Limit > 0 {
		s.mu.Lock()
		l := s.limiters[keyOf(req.scope)]
		if l == nil {
			l = newLimiter(quota)
			s.limiters[keyOf(req.scope)] = l
		}
		ok, retryAt, _ := l.admit(regKey, now)
		if !ok {
			r := errReply(http.StatusTooManyRequests, codeThrottled, "Too many requests", now)
			r.retryAfter = seconds(retryAt.Sub(now))
			s.told[toldKey] = now.Add(time.Duration(r.retryAfter) * time.Second)
			s.stats.Throttled++
			s.stats.second(now).Throttled++
			s.mu.Unlock()
			return r
		}
		s.stats.Admitted++
		s.stats.second(now).Admitted++
		s.mu.Unlock()
	} else if counts {
		s.mu.Lock()
		s.stats.Admitted++
		s.stats.second(now).Admitted++
		s.mu.Unlock()
	}

	switch req.kind {
	case kindLookup:
		return s.lookup(req, now)
	case kindPoll:
		return s.poll(req, now)
	}
	return s.register(ctx, req, m, now)
}

// parseDeviceBody reads a DeviceRegistration body leniently: empty, blank,
// "{}" and JSON null are all "no body" (C# sends nothing, Node a single
// space on polls). [§3 of the protocol notes; azure-iot-sdk-csharp
// provisioning/transport/mqtt/src/ProvisioningChannelHandlerAdapter.cs]
func parseDeviceBody(b []byte) (DeviceRegistration, error) {
	var dr DeviceRegistration
	t := bytes.TrimSpace(b)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return dr, nil
	}
	if err := json.Unmarshal(t, &dr); err != nil {
		return dr, err
	}
	return dr, nil
}

func (s *Service) lookup(req deviceRequest, now time.Time) reply {
	if _, err := parseDeviceBody(req.body); err != nil {
		return errReply(http.StatusBadRequest, codeBadRequest, "request body is not valid JSON", now)
	}
	s.mu.Lock()
	r := s.regs[keyOf(req.regID)]
	var res *DeviceRegistrationResult
	if r != nil {
		res = r.result()
	}
	s.mu.Unlock()
	if res == nil {
		return errReply(http.StatusNotFound, codeNotFound, "registration not found", now)
	}
	return reply{status: http.StatusOK, body: res}
}

func (s *Service) poll(req deviceRequest, now time.Time) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	op := s.ops[req.operationID]
	if op == nil || op.RegKey != keyOf(req.regID) {
		return errReply(http.StatusNotFound, codeNotFound, "operation not found", now)
	}
	if now.Before(op.ReadyAt) {
		ra := s.retryAfterFor(op, now)
		s.pollTold[op.ID] = now.Add(time.Duration(ra) * time.Second)
		return reply{status: http.StatusAccepted, retryAfter: ra, body: RegistrationOperationStatus{OperationID: op.ID, Status: StatusAssigning}}
	}
	delete(s.pollTold, op.ID)
	return reply{status: http.StatusOK, body: RegistrationOperationStatus{OperationID: op.ID, Status: op.Status, RegistrationState: op.Result}}
}

// retryAfterFor tells a device when to poll: the configured interval, or
// longer if the operation will not be ready by then.
func (s *Service) retryAfterFor(op *operation, now time.Time) int {
	ra := seconds(s.cfg.RetryAfter)
	if left := seconds(op.ReadyAt.Sub(now)); op.ReadyAt.After(now) && left > ra {
		ra = left
	}
	return ra
}

const opRetention = time.Hour

// opSweepEvery is how often (on the service clock) expired operations are
// dropped; an operation lives at most opRetention + opSweepEvery.
const opSweepEvery = time.Minute

func (s *Service) register(ctx context.Context, req deviceRequest, m *match, now time.Time) reply {
	dr, err := parseDeviceBody(req.body)
	if err != nil {
		return errReply(http.StatusBadRequest, codeBadRequest, "request body is not valid JSON", now)
	}
	if dr.RegistrationID != "" && !strings.EqualFold(dr.RegistrationID, req.regID) {
		return errReply(http.StatusBadRequest, codeBadRequest, "registrationId in the body does not match the request", now)
	}
	if isJSONNull(dr.Payload) {
		dr.Payload = nil
	}

	unlock := s.devLocks.lock(keyOf(req.regID))
	res, status := s.decide(ctx, req, m, dr.Payload, now)
	unlock()

	delay := s.cfg.AssignDelay
	if f := s.cfg.Faults; f != nil && f.SlowAssign != nil {
		delay += f.SlowAssign(req.regID)
	}
	op := &operation{
		ID:      "4." + randomHex(8) + "." + randomHex(16),
		RegKey:  keyOf(req.regID),
		Created: now,
		ReadyAt: now.Add(delay),
		Status:  status,
		Result:  res,
	}
	s.mu.Lock()
	// Sweep expired operations at most once per opSweepEvery: a sweep on
	// every registration made a storm of n registrations cost O(n²).
	if now.Sub(s.lastOpSweep) >= opSweepEvery || now.Before(s.lastOpSweep) {
		s.lastOpSweep = now
		for id, o := range s.ops {
			if now.Sub(o.Created) > opRetention {
				delete(s.ops, id)
				delete(s.pollTold, id)
			}
		}
	}
	s.ops[op.ID] = op
	if s.cfg.FastAssign && delay <= 0 {
		// The register answer carries the result: no poll, no retry-after
		// wait. Clients handle a finished operation status on the register
		// response as on a poll.
		s.mu.Unlock()
		return reply{status: http.StatusOK, body: RegistrationOperationStatus{OperationID: op.ID, Status: op.Status, RegistrationState: op.Result}}
	}
	ra := s.retryAfterFor(op, now)
	s.pollTold[op.ID] = now.Add(time.Duration(ra) * time.Second)
	s.mu.Unlock()
	return reply{status: http.StatusAccepted, retryAfter: ra, body: RegistrationOperationStatus{OperationID: op.ID, Status: StatusAssigning}}
}

// policyOf returns the effective reprovisioning policy: (update hub
// assignment, migrate device data, legacy sticky). Absent fields default to
// true; devices on api-version ≤ 2018-04-01 whose enrollment has no policy
// keep the pre-reprovisioning sticky behaviour.
// [MicrosoftDocs/azure-docs articles/iot-dps/concepts-device-reprovision.md]
func policyOf(c enrollmentCommon, apiVersion string) (update, migrate, sticky bool) {
	update, migrate = true, true
	if c.ReprovisionPolicy == nil {
		v := strings.TrimSpace(apiVersion)
		if v != "" && len(v) >= 10 && v[:10] <= legacyStickyAPIVersion {
			return true, true, true
		}
		return update, migrate, false
	}
	if p := c.ReprovisionPolicy.UpdateHubAssignment; p != nil {
		update = *p
	}
	if p := c.ReprovisionPolicy.MigrateDeviceData; p != nil {
		migrate = *p
	}
	return update, migrate, false
}

// decide makes the registration's outcome happen on the hubs and records it.
// Caller holds the device lock.
//
// Outcomes (MicrosoftDocs/azure-docs articles/iot-dps/concepts-device-reprovision.md,
// rest-api-specs .../device/models.tsp AssignedDeviceSubstatus):
//   - first registration: allocate, create the device, apply the initial twin
//     (webhook's over enrollment's) → initialAssignment;
//   - never reprovision (updateHubAssignment=false) or legacy sticky: stay on
//     the current hub, twin untouched, previous substatus kept;
//   - allocation picks the current hub: migrate keeps the twin (previous
//     substatus kept) unless the webhook returned an initial twin; reset
//     re-applies the initial twin → deviceDataReset;
//   - allocation picks another hub: migrate copies tags, desired and reported
//     → deviceDataMigrated; reset applies the initial twin → deviceDataReset;
//     either way the old hub's device is removed; a move back to a hub the
//     device had before reports reprovisionedToInitialAssignment.
func (s *Service) decide(ctx context.Context, req deviceRequest, m *match, payload json.RawMessage, now time.Time) (*DeviceRegistrationResult, string) {
	key := keyOf(req.regID)
	s.mu.Lock()
	var reg *registration
	if old := s.regs[key]; old != nil {
		reg = old.clone()
	} else {
		reg = &registration{RegistrationID: req.regID, Created: now}
	}
	s.mu.Unlock()

	reg.Attestation = m.attestation
	reg.CertInfo, reg.SigningCertInfo = m.certInfo, m.signingInfo
	reg.EnrollmentGroupID = ""
	if m.group != nil {
		reg.EnrollmentGroupID = m.group.EnrollmentGroupID
	}
	reg.LastUpdated = now
	reg.ETag = newETag()
	reg.ErrorCode, reg.ErrorMessage = 0, ""
	c := m.common
	log := s.log.With("device", req.regID)

	finish := func(status string) (*DeviceRegistrationResult, string) {
		reg.Status = status
		if status != StatusAssigned {
			// The device's identity stays where it was (currentHub); the
			// record shows no assignment.
			reg.AssignedHub, reg.DeviceID, reg.Substatus = "", "", ""
		}
		s.mu.Lock()
		if err := s.persistRegistration(key, reg); err != nil {
			// The device's hub identity may exist already; without its
			// record DPS answers as for a service error, and the device's
			// retry registers it again.
			s.mu.Unlock()
			log.Error("dps: storing the registration record failed", "err", err)
			reg.Status, reg.ErrorCode, reg.ErrorMessage = StatusFailed, 500000, "storing the registration record failed"
			return reg.result(), StatusFailed
		}
		s.regs[key] = reg
		res := reg.result()
		s.mu.Unlock()
		s.countOutcome(kindRegister, status)
		return res, status
	}
	fail := func(code int, msg string) (*DeviceRegistrationResult, string) {
		log.Info("dps: registration failed", "err", msg)
		reg.ErrorCode, reg.ErrorMessage = code, msg
		return finish(StatusFailed)
	}

	if c.ProvisioningStatus == ProvisioningDisabled {
		return finish(StatusDisabled)
	}

	deviceID := c.DeviceID
	if deviceID == "" {
		deviceID = req.regID
	}
	dev := ident.Device{DeviceID: deviceID, EdgeEnabled: c.Capabilities != nil && c.Capabilities.IoTEdge}
	switch m.attestation {
	case AttestationSymmetricKey:
		// The hub identity takes the key the device already holds.
		pk, sk := "", ""
		if m.enrollment != nil {
			pk, sk = c.Attestation.SymmetricKey.PrimaryKey, c.Attestation.SymmetricKey.SecondaryKey
		} else {
			pk, _ = DeriveGroupKey(c.Attestation.SymmetricKey.PrimaryKey, req.regID)
			sk, _ = DeriveGroupKey(c.Attestation.SymmetricKey.SecondaryKey, req.regID)
		}
		dev.Auth = ident.Auth{Type: ident.AuthSAS, PrimaryKey: pk, SecondaryKey: sk}
	case AttestationX509:
		if m.enrollment != nil {
			dev.Auth = ident.Auth{Type: ident.AuthSelfSigned, PrimaryThumbprint: m.certInfo.SHA1Thumbprint}
		} else {
			dev.Auth = ident.Auth{Type: ident.AuthCertificateAuthority}
		}
	}

	update, migrate, sticky := policyOf(c, req.apiVersion)
	first := reg.currentHub == ""
	var target string
	var twinOverride *InitialTwin
	var retPayload []byte
	if !first && (!update || sticky) {
		target = reg.currentHub
	} else {
		rc := DeviceRuntimeContext{RegistrationID: req.regID, Payload: payload}
		if !first {
			rc.CurrentIoTHubHostName, rc.CurrentDeviceID = reg.currentHub, reg.currentDeviceID
		}
		switch m.attestation {
		case AttestationSymmetricKey:
			rc.SymmetricKey = &struct{}{}
		case AttestationX509:
			rc.X509 = &X509DeviceInfo{ClientCertificateInfo: m.certInfo}
		}
		a, err := s.allocate(ctx, m, rc, req.remote)
		if err != nil {
			return fail(codeAllocationFailed, err.Error())
		}
		target, twinOverride, retPayload = a.hub, a.twin, a.payload
	}
	reg.Payload = retPayload

	initial := c.InitialTwin
	if twinOverride != nil {
		initial = twinOverride
	}
	hubs := s.cfg.Hubs
	switch {
	case first:
		if err := hubs.UpsertDevice(target, dev); err != nil {
			return fail(codeHubFailed, fmt.Sprintf("create device on %s: %v", target, err))
		}
		if initial != nil {
			if err := hubs.ImportTwin(target, deviceID, twinOf(initial)); err != nil {
				return fail(codeHubFailed, fmt.Sprintf("set initial twin on %s: %v", target, err))
			}
		}
		reg.Substatus = SubstatusInitialAssignment
	case target == reg.currentHub && deviceID == reg.currentDeviceID:
		if err := hubs.UpsertDevice(target, dev); err != nil {
			return fail(codeHubFailed, fmt.Sprintf("update device on %s: %v", target, err))
		}
		if update && !sticky && (!migrate || twinOverride != nil) {
			if err := hubs.ImportTwin(target, deviceID, twinOf(initial)); err != nil {
				return fail(codeHubFailed, fmt.Sprintf("reset twin on %s: %v", target, err))
			}
			reg.Substatus = SubstatusDeviceDataReset
		}
	default:
		oldHub, oldID := reg.currentHub, reg.currentDeviceID
		var twin ident.Twin
		substatus := SubstatusDeviceDataReset
		if migrate && twinOverride == nil {
			if t, ok := hubs.ExportTwin(oldHub, oldID); ok {
				twin = t
			} else {
				twin = twinOf(initial)
			}
			substatus = SubstatusDeviceDataMigrated
		} else {
			twin = twinOf(initial)
		}
		if err := hubs.UpsertDevice(target, dev); err != nil {
			return fail(codeHubFailed, fmt.Sprintf("create device on %s: %v", target, err))
		}
		if err := hubs.ImportTwin(target, deviceID, twin); err != nil {
			return fail(codeHubFailed, fmt.Sprintf("move twin to %s: %v", target, err))
		}
		if err := hubs.RemoveDevice(oldHub, oldID); err != nil {
			log.Warn("dps: could not remove device from its old hub", "hub", oldHub, "err", err)
		}
		for _, h := range reg.history {
			if strings.EqualFold(h, target) {
				substatus = SubstatusReprovisionedToInitialAssignment
				break
			}
		}
		reg.Substatus = substatus
	}
	if !containsFold(reg.history, target) {
		reg.history = append(reg.history, target)
	}
	reg.currentHub, reg.currentDeviceID = target, deviceID
	reg.AssignedHub, reg.DeviceID = target, deviceID
	log.Info("dps: device assigned", "hub", target, "substatus", reg.Substatus)
	return finish(StatusAssigned)
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// twinOf converts an initial twin for the hub, dropping $version and $metadata.
func twinOf(t *InitialTwin) ident.Twin {
	out := ident.Twin{Tags: map[string]any{}, Desired: map[string]any{}, Reported: map[string]any{}}
	if t == nil {
		return out
	}
	for k, v := range t.Tags {
		if !strings.HasPrefix(k, "$") {
			out.Tags[k] = v
		}
	}
	if t.Properties != nil {
		for k, v := range t.Properties.Desired {
			if !strings.HasPrefix(k, "$") {
				out.Desired[k] = v
			}
		}
	}
	return out
}

var errNoHubs = errors.New("no linked hubs")
