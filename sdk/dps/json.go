package dps

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Result is a device's registration state as DPS reports it
// (DeviceRegistrationResult in Azure/azure-rest-api-specs
// specification/deviceprovisioningservices/data-plane/DeviceProvisioningServices/device/models.tsp).
type Result struct {
	RegistrationID string
	DeviceID       string
	AssignedHub    string // host name of the IoT hub, e.g. "myhub.azure-devices.net"
	Status         string // "assigned", "failed", "disabled", "unassigned", "assigning"
	Substatus      string // "initialAssignment", "deviceDataMigrated", "deviceDataReset", "reprovisionedToInitialAssignment"
	ETag           string
	// Payload is the custom allocation webhook's payload for the device;
	// nil when there is none.
	Payload   json.RawMessage
	CreatedAt time.Time // zero when absent or unreadable
	UpdatedAt time.Time // zero when absent or unreadable
	// ErrorCode and ErrorMessage explain a "failed" registration.
	ErrorCode    int
	ErrorMessage string
}

// Assigned reports whether the device has a hub to connect to.
func (r *Result) Assigned() bool {
	return r != nil && strings.EqualFold(r.Status, StatusAssigned) && r.AssignedHub != "" && r.DeviceID != ""
}

// wireResult is DeviceRegistrationResult on the wire (camelCase).
type wireResult struct {
	RegistrationID string          `json:"registrationId"`
	CreatedAt      string          `json:"createdDateTimeUtc"`
	AssignedHub    string          `json:"assignedHub"`
	DeviceID       string          `json:"deviceId"`
	Status         string          `json:"status"`
	Substatus      string          `json:"substatus"`
	ErrorCode      flexInt         `json:"errorCode"`
	ErrorMessage   string          `json:"errorMessage"`
	UpdatedAt      string          `json:"lastUpdatedDateTimeUtc"`
	ETag           string          `json:"etag"`
	Payload        json.RawMessage `json:"payload"`
}

// wireOperation is RegistrationOperationStatus.
type wireOperation struct {
	OperationID       string      `json:"operationId"`
	Status            string      `json:"status"`
	RegistrationState *wireResult `json:"registrationState"`
}

// wireError is ProvisioningServiceErrorDetails.
type wireError struct {
	ErrorCode  flexInt `json:"errorCode"`
	TrackingID string  `json:"trackingId"`
	Message    string  `json:"message"`
}

// wireRequest is DeviceRegistration, the register and lookup request body.
type wireRequest struct {
	RegistrationID string          `json:"registrationId"`
	Payload        json.RawMessage `json:"payload,omitempty"`
}

// flexInt reads a JSON number or a numeric string (some services quote
// error codes); anything else reads as 0 rather than failing the decode.
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	s = strings.Trim(s, `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n != int64(int(n)) {
		*f = 0
		return nil
	}
	*f = flexInt(n)
	return nil
}

// operation is a decoded RegistrationOperationStatus.
type operation struct {
	OperationID string
	Status      string // lower-cased
	Result      *Result
}

// decodeOperation parses a register or operation-status answer.
func decodeOperation(body []byte) (*operation, error) {
	var w wireOperation
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("%w: operation status is not JSON: %v", ErrBadResponse, err)
	}
	op := &operation{OperationID: w.OperationID, Status: strings.ToLower(w.Status)}
	if w.RegistrationState != nil {
		op.Result = w.RegistrationState.result()
		if op.Status == "" {
			op.Status = strings.ToLower(op.Result.Status)
		}
	}
	if op.Status == "" {
		return nil, fmt.Errorf("%w: operation status has no status", ErrBadResponse)
	}
	return op, nil
}

// decodeResult parses a registration status lookup answer
// (DeviceRegistrationResult, not wrapped in an operation).
func decodeResult(body []byte) (*Result, error) {
	var w wireResult
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("%w: registration state is not JSON: %v", ErrBadResponse, err)
	}
	return w.result(), nil
}

// decodeError reads an error body leniently: an empty, non-JSON or
// differently shaped body yields the zero value.
func decodeError(body []byte) wireError {
	var w wireError
	if err := json.Unmarshal(body, &w); err != nil {
		return wireError{}
	}
	return w
}

func (w *wireResult) result() *Result {
	r := &Result{
		RegistrationID: w.RegistrationID,
		DeviceID:       w.DeviceID,
		AssignedHub:    w.AssignedHub,
		Status:         strings.ToLower(w.Status),
		Substatus:      w.Substatus,
		ETag:           w.ETag,
		CreatedAt:      parseTime(w.CreatedAt),
		UpdatedAt:      parseTime(w.UpdatedAt),
		ErrorCode:      int(w.ErrorCode),
		ErrorMessage:   w.ErrorMessage,
	}
	if p := bytes.TrimSpace(w.Payload); len(p) > 0 && !bytes.Equal(p, []byte("null")) {
		r.Payload = append(json.RawMessage(nil), p...)
	}
	return r
}

// parseTime reads DPS timestamps: RFC 3339 with up to nine fractional
// digits ("2024-01-01T00:00:00.0000000Z"), or the same without a zone,
// taken as UTC. Anything else is the zero time.
func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC()
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return t.UTC()
	}
	return time.Time{}
}

// encodePayload turns Register's payload argument into JSON: nil means
// none; json.RawMessage and []byte are taken as JSON text and must be
// valid; anything else is marshalled.
func encodePayload(payload any) (json.RawMessage, error) {
	var raw []byte
	switch p := payload.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		raw = p
	case []byte:
		raw = p
	default:
		b, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("dps: payload: %w", err)
		}
		raw = b
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, nil
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("dps: payload is not valid JSON")
	}
	return append(json.RawMessage(nil), raw...), nil
}
