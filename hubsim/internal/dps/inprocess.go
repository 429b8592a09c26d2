package dps

import (
	"context"
	"fmt"
	"time"
)

// DeviceCall is one device request made in process, without HTTP or MQTT:
// the seam a fleet simulator on a virtual clock (hubsim/fleetplan) uses to
// run devices through the same faults, authentication, quota, allocation
// and reprovisioning code as the HTTPS and MQTT device APIs.
type DeviceCall struct {
	// Op is OpRegister, OpPoll or OpLookup.
	Op             string
	IDScope        string
	RegistrationID string
	// SAS is the device's SAS token (what HTTPS sends as Authorization
	// and MQTT as the password).
	SAS string
	// OperationID names the operation a poll asks about.
	OperationID string
	// Body is the DeviceRegistration JSON of a register or lookup (nil: none).
	Body []byte
	// APIVersion is the api-version the device would send ("" behaves as a
	// current one).
	APIVersion string
	// Transport labels the request in logs ("https", "mqtt", ...).
	Transport string
}

// The operations of a DeviceCall.
const (
	OpRegister = "register"
	OpPoll     = "poll"
	OpLookup   = "lookup"
)

// DeviceAnswer is the service's answer to a DeviceCall: what HTTPS would
// send as the status, Retry-After header and body.
type DeviceAnswer struct {
	// Status is the HTTP status (202 while assigning, 200, 429, 401, ...).
	Status int
	// RetryAfter is the retry-after sent (whole seconds), 0 when none.
	RetryAfter time.Duration
	// OperationID and OpStatus are set for register and poll answers.
	OperationID string
	OpStatus    string
	// Result is the registration state: the poll's once the operation is
	// done, the lookup's.
	Result *DeviceRegistrationResult
	// Error is set for error answers.
	Error *ErrorDetails
}

// Device answers one in-process device request on the service's clock.
func (s *Service) Device(ctx context.Context, c DeviceCall) (DeviceAnswer, error) {
	var kind opKind
	switch c.Op {
	case OpRegister:
		kind = kindRegister
	case OpPoll:
		kind = kindPoll
	case OpLookup:
		kind = kindLookup
	default:
		return DeviceAnswer{}, fmt.Errorf("%w: unknown device operation %q", ErrInvalid, c.Op)
	}
	transport := c.Transport
	if transport == "" {
		transport = "inprocess"
	}
	rp := s.handleDevice(ctx, deviceRequest{
		kind: kind, scope: c.IDScope, regID: c.RegistrationID, apiVersion: c.APIVersion,
		operationID: c.OperationID, creds: deviceCreds{SAS: c.SAS}, body: c.Body,
		remote: "inprocess", transport: transport,
	})
	a := DeviceAnswer{Status: rp.status, RetryAfter: time.Duration(rp.retryAfter) * time.Second}
	switch b := rp.body.(type) {
	case RegistrationOperationStatus:
		a.OperationID, a.OpStatus, a.Result = b.OperationID, b.Status, b.RegistrationState
	case *DeviceRegistrationResult:
		a.Result = b
	case ErrorDetails:
		a.Error = &b
	case nil:
	default:
		return a, fmt.Errorf("dps: unexpected answer body %T", rp.body)
	}
	return a, nil
}

// SetQuota changes the registration quota while the service runs (what
// scaling the DPS instance does). Slots already promised to devices in a
// 429's Retry-After are kept; new requests are spaced at the new rate.
func (s *Service) SetQuota(q Quota) error {
	if err := q.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.window() != s.cfg.Quota.window() {
		return fmt.Errorf("%w: SetQuota cannot change the quota window (%s)", ErrInvalid, s.cfg.Quota.window())
	}
	s.cfg.Quota = q
	if q.Limit <= 0 {
		clear(s.limiters)
		return nil
	}
	for k, l := range s.limiters {
		n := newLimiter(q)
		n.tat, n.reserved, n.lastSweep = l.tat, l.reserved, l.lastSweep
		s.limiters[k] = n
	}
	return nil
}
