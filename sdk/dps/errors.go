package dps

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/porthole-iot/porthole/sdk/retry"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrFailed: DPS finished the registration with status "failed"
	// (for example the custom allocation webhook refused the device). The
	// error is a *RegistrationError carrying the result.
	ErrFailed = errors.New("dps: registration failed")
	// ErrDisabled: the device's enrollment (or its group) is disabled. The
	// error is a *RegistrationError carrying the result.
	ErrDisabled = errors.New("dps: enrollment disabled")
	// ErrBadResponse: DPS answered with something porthole cannot read (not
	// JSON, a missing operation ID, an unknown status). Permanent.
	ErrBadResponse = errors.New("unexpected response from DPS")
	// ErrConfig: New was given an invalid Config.
	ErrConfig = errors.New("dps: invalid config")
)

// StatusError is a non-success answer from DPS: an HTTP status (or, over
// MQTT, the status in `$dps/registrations/res/<status>/`) with the fields of
// DPS's error body (ProvisioningServiceErrorDetails in
// Azure/azure-rest-api-specs specification/deviceprovisioningservices/
// data-plane/DeviceProvisioningServices/device/models.tsp).
//
// It implements retry.StatusCoder and retry.RetryAfterer, so package retry
// decides what is transient: 429 waits Retry-After, 5xx backs off, other
// 4xx (400, 401, 403, 404, ...) are permanent.
type StatusError struct {
	StatusCode int    // HTTP status, e.g. 401
	ErrorCode  int    // DPS error code, e.g. 401002 (body errorCode, else x-ms-error-code)
	TrackingID string // body trackingId, for Azure support
	Message    string // body message
	// RetryAfter is the server's Retry-After (header or topic property);
	// meaningful when HasRetryAfter.
	RetryAfter    time.Duration
	HasRetryAfter bool
}

func (e *StatusError) Error() string {
	var b strings.Builder
	b.WriteString("status ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" " + t)
	}
	if e.ErrorCode != 0 {
		b.WriteString(" (error " + strconv.Itoa(e.ErrorCode))
		if e.TrackingID != "" {
			b.WriteString(", tracking id " + e.TrackingID)
		}
		b.WriteString(")")
	} else if e.TrackingID != "" {
		b.WriteString(" (tracking id " + e.TrackingID + ")")
	}
	if e.HasRetryAfter {
		b.WriteString(" retry after " + e.RetryAfter.String())
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// HTTPStatus implements retry.StatusCoder.
func (e *StatusError) HTTPStatus() int { return e.StatusCode }

// RetryAfterHint implements retry.RetryAfterer.
func (e *StatusError) RetryAfterHint() (time.Duration, bool) {
	return e.RetryAfter, e.HasRetryAfter
}

var (
	_ retry.StatusCoder  = (*StatusError)(nil)
	_ retry.RetryAfterer = (*StatusError)(nil)
)

// RegistrationError reports a registration that DPS finished without an
// assignment. It matches ErrFailed or ErrDisabled with errors.Is.
type RegistrationError struct {
	Status string  // "failed" or "disabled"
	Result *Result // the registration state DPS returned
}

func (e *RegistrationError) Error() string {
	msg := "dps: registration " + e.Status
	if e.Status == StatusDisabled {
		msg = ErrDisabled.Error()
	}
	if r := e.Result; r != nil && (r.ErrorCode != 0 || r.ErrorMessage != "") {
		msg += fmt.Sprintf(" (error %d): %s", r.ErrorCode, r.ErrorMessage)
	}
	return msg
}

// Is matches ErrFailed for status "failed" and ErrDisabled for "disabled".
func (e *RegistrationError) Is(target error) bool {
	switch target {
	case ErrFailed:
		return e.Status == StatusFailed
	case ErrDisabled:
		return e.Status == StatusDisabled
	}
	return false
}
