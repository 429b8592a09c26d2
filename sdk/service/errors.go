package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/porthole-iot/porthole/sdk/retry"
)

// Sentinel errors. A failed request returns an *Error; errors.Is matches
// it against the sentinel of the same meaning.
var (
	// ErrStreamRejected: the device answered the stream request with a
	// rejection (is-accepted False).
	ErrStreamRejected = errors.New("service: device rejected the stream")
	// ErrDeviceNotOnline: 404 DeviceNotOnline (404103), the device is not
	// connected or not subscribed.
	ErrDeviceNotOnline = errors.New("service: device not online")
	// ErrNotFound: any other 404 (no such device, enrollment, registration…).
	ErrNotFound = errors.New("service: not found")
	// ErrThrottled: 429, the hub or DPS throttled the request.
	ErrThrottled = errors.New("service: throttled")
	// ErrTimeout: 504 GatewayTimeout, the device did not answer in time.
	ErrTimeout = errors.New("service: device did not answer in time")
	// ErrUnauthorized: 401 or 403, the credentials were refused.
	ErrUnauthorized = errors.New("service: unauthorized")
	// ErrConflict: 409, the resource already exists.
	ErrConflict = errors.New("service: conflict")
	// ErrPreconditionFailed: 412, the etag did not match.
	ErrPreconditionFailed = errors.New("service: etag does not match")
	// ErrProtocol: the service answered with something this client cannot
	// read (missing stream headers, a body that is not the expected JSON).
	ErrProtocol = errors.New("service: unexpected response")
)

// Error is a failed IoT Hub or DPS service request: a non-success HTTP
// status with what the service said about it. It implements sdk/retry's
// StatusCoder and RetryAfterer, so retry.Classify treats 429 (with its
// Retry-After), 5xx and 408 as retryable and other statuses as permanent.
type Error struct {
	// StatusCode is the HTTP status, e.g. 404.
	StatusCode int
	// ErrorCode is the service's error name (e.g. "DeviceNotOnline"), from the
	// iothub-errorcode header or the body; for a numeric code with no known
	// name it is the number in decimal. Empty when the service gave none.
	ErrorCode string
	// ErrorNumber is the six-digit error code (e.g. 404103), 0 when unknown.
	ErrorNumber int
	// Message is the service's human-readable message (printable, bounded).
	Message string
	// TrackingID is the service's tracking id, for support requests.
	TrackingID string
	// RetryAfter is the server-requested delay, valid when HasRetryAfter.
	RetryAfter    time.Duration
	HasRetryAfter bool
}

func (e *Error) Error() string {
	// No "service:" prefix: the methods that return an *Error wrap it in
	// one that names the operation.
	var b strings.Builder
	b.WriteString(strconv.Itoa(e.StatusCode))
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" " + t)
	}
	if e.ErrorCode != "" {
		b.WriteString(" (" + e.ErrorCode)
		if e.ErrorNumber != 0 && e.ErrorCode != strconv.Itoa(e.ErrorNumber) {
			b.WriteString(" " + strconv.Itoa(e.ErrorNumber))
		}
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// HTTPStatus implements retry.StatusCoder.
func (e *Error) HTTPStatus() int { return e.StatusCode }

// RetryAfterHint implements retry.RetryAfterer.
func (e *Error) RetryAfterHint() (time.Duration, bool) { return e.RetryAfter, e.HasRetryAfter }

// Is matches the package's sentinel errors.
func (e *Error) Is(target error) bool {
	notOnline := e.ErrorCode == codeDeviceNotOnline || e.ErrorNumber == 404103
	switch target {
	case ErrDeviceNotOnline:
		return notOnline
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound && !notOnline
	case ErrThrottled:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrTimeout:
		return e.StatusCode == http.StatusGatewayTimeout || e.ErrorCode == codeGatewayTimeout
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrPreconditionFailed:
		return e.StatusCode == http.StatusPreconditionFailed
	}
	return false
}

var (
	_ retry.StatusCoder  = (*Error)(nil)
	_ retry.RetryAfterer = (*Error)(nil)
)

// maxMessage bounds Error.Message.
const maxMessage = 512

// parseError builds the *Error of a non-success response from its status,
// headers and (already bounded) body. It understands the shapes the services
// use:
//
//   - hub, as hubsim and older hubs write it: {"Message":"ErrorCode:<name>;<text>","ExceptionMessage":…}
//   - hub, as current hubs write it: {"Message":"{\"errorCode\":404103,\"trackingId\":…,\"message\":…}", …}
//     (the inner object is JSON inside a JSON string, sometimes escaped twice)
//   - DPS and some hub answers: {"errorCode":404201,"trackingId":…,"message":…} at the root
//
// [Azure/azure-iot-sdk-csharp iothub/service/src/Exceptions/ExceptionHandlingHelper.cs (GetErrorCodeAndTrackingId)],
// [Azure/azure-iot-sdk-node common/transport/http/src/http.ts (parseErrorBody)],
// [Azure/azure-rest-api-specs …/deviceprovisioningservices/…/2021-10-01/service.json (ProvisioningServiceErrorDetails)].
// Anything else becomes the Message as text.
func parseError(status int, h http.Header, body []byte, now time.Time) *Error {
	e := &Error{StatusCode: status}
	if h != nil {
		e.ErrorCode = strings.TrimSpace(h.Get(hdrHubErrorCode))
		if n, err := strconv.Atoi(strings.TrimSpace(h.Get(hdrDPSErrorCode))); err == nil && n > 0 {
			e.ErrorNumber = n
		}
		if v := h.Get(hdrRetryAfter); v != "" {
			e.RetryAfter, e.HasRetryAfter = retry.ParseRetryAfter(v, now)
		}
	}
	if !parseErrorBody(e, body, 0) {
		e.Message = string(body)
	}
	if e.ErrorCode == "" && e.ErrorNumber != 0 {
		if name, ok := errorNames[e.ErrorNumber]; ok {
			e.ErrorCode = name
		} else {
			e.ErrorCode = strconv.Itoa(e.ErrorNumber)
		}
	}
	e.Message = clean(e.Message)
	return e
}

// errorBody covers the field names of every error shape parseError reads.
// encoding/json matches names case-insensitively, so "Message" and
// "message" both land in Message.
type errorBody struct {
	Message    json.RawMessage `json:"message"`
	ErrorCode  json.RawMessage `json:"errorCode"`
	TrackingID string          `json:"trackingId"`
}

// parseErrorBody fills e from a JSON error body; it reports false when the
// body is not a JSON object. depth bounds the JSON-in-a-string nesting.
func parseErrorBody(e *Error, body []byte, depth int) bool {
	if depth > 3 {
		return false
	}
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		// Bodies escaped twice arrive as a JSON string holding the object.
		var s string
		if json.Unmarshal(body, &s) == nil && strings.HasPrefix(strings.TrimSpace(s), "{") {
			return parseErrorBody(e, []byte(s), depth+1)
		}
		return false
	}
	if eb.TrackingID != "" && e.TrackingID == "" {
		e.TrackingID = eb.TrackingID
	}
	if len(eb.ErrorCode) > 0 {
		var n int
		var s string
		switch {
		case json.Unmarshal(eb.ErrorCode, &n) == nil:
		case json.Unmarshal(eb.ErrorCode, &s) == nil:
			if v, err := strconv.Atoi(s); err == nil {
				n = v
			} else if e.ErrorCode == "" && s != "" {
				e.ErrorCode = s
			}
		}
		if n > 0 && e.ErrorNumber == 0 {
			e.ErrorNumber = n
		}
	}
	var msg string
	if json.Unmarshal(eb.Message, &msg) != nil {
		return true
	}
	trimmed := strings.TrimSpace(msg)
	if strings.HasPrefix(trimmed, "{") || strings.HasPrefix(trimmed, `"`) {
		if parseErrorBody(e, []byte(trimmed), depth+1) {
			return true
		}
	}
	// "ErrorCode:<name>;<text>"
	if rest, ok := strings.CutPrefix(msg, "ErrorCode:"); ok {
		name, text, _ := strings.Cut(rest, ";")
		if e.ErrorCode == "" {
			e.ErrorCode = strings.TrimSpace(name)
		}
		msg = text
	}
	if e.Message == "" {
		e.Message = msg
	}
	return true
}

// clean makes a service message safe to print: valid UTF-8, no control
// characters, bounded length.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// protocolError reports a response this client cannot use.
func protocolError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}
