package iothub

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors.
var (
	// ErrClosed: the client was closed (Close), or stopped for good; Err
	// tells why.
	ErrClosed = errors.New("iothub: client closed")
	// ErrNotConnected: a twin request was made while the client was
	// reconnecting. Requests fail fast instead of queueing; retry later.
	ErrNotConnected = errors.New("iothub: not connected")
	// ErrConnectionLost: the connection dropped before the hub answered.
	// It is transient for sdk/retry.
	ErrConnectionLost = errors.New("iothub: connection lost")
	// ErrInvalidConfig: Dial was given an unusable Config.
	ErrInvalidConfig = errors.New("iothub: invalid config")
	// ErrStreamAnswered: Accept or Reject was called on a stream request that
	// was already answered.
	ErrStreamAnswered = errors.New("iothub: stream request already answered")
)

// CONNACK return codes (MQTT 3.1.1 §3.2.2.3).
const (
	ConnRefusedProtocolVersion byte = 0x01
	ConnRefusedIdentifier      byte = 0x02
	ConnRefusedUnavailable     byte = 0x03
	ConnRefusedBadCredentials  byte = 0x04
	ConnRefusedNotAuthorized   byte = 0x05
)

// ConnectError reports that the hub refused the MQTT CONNECT. It implements
// sdk/retry's StatusCoder: bad credentials (0x04), not authorized (0x05, what
// IoT Hub answers for a wrong, expired or unknown credential and a disabled
// device) and a rejected client id (0x02) read as 401, a permanent failure
// after which a device goes back to DPS; server unavailable (0x03) reads as
// 503 and is retried. The C SDK treats these codes the same way
// (Azure/azure-iot-sdk-c iothub_client/src/iothubtransport_mqtt_common.c,
// CONNACK handling: BAD_USERNAME_PASSWORD and ID_REJECTED are not
// recoverable).
type ConnectError struct {
	ReturnCode byte
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("iothub: connection refused: %s (CONNACK 0x%02x)", connackText(e.ReturnCode), e.ReturnCode)
}

// HTTPStatus implements retry.StatusCoder.
func (e *ConnectError) HTTPStatus() int {
	switch e.ReturnCode {
	case ConnRefusedIdentifier, ConnRefusedBadCredentials, ConnRefusedNotAuthorized:
		return http.StatusUnauthorized
	case ConnRefusedUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusBadRequest
	}
}

func connackText(rc byte) string {
	switch rc {
	case ConnRefusedProtocolVersion:
		return "unacceptable protocol version"
	case ConnRefusedIdentifier:
		return "identifier rejected"
	case ConnRefusedUnavailable:
		return "server unavailable"
	case ConnRefusedBadCredentials:
		return "bad user name or password"
	case ConnRefusedNotAuthorized:
		return "not authorized"
	default:
		return "unknown return code"
	}
}

// StatusError is a non-2xx answer of the hub to a twin request
// (`$iothub/twin/res/<status>`). It implements retry.StatusCoder, so 429 and
// 5xx are retried by sdk/retry.
type StatusError struct {
	Status  int
	Message string // the hub's error message, if the body carried one
}

func (e *StatusError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("iothub: status %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("iothub: status %d %s", e.Status, http.StatusText(e.Status))
}

// HTTPStatus implements retry.StatusCoder.
func (e *StatusError) HTTPStatus() int { return e.Status }

// lostError marks a dropped connection as transient for sdk/retry while
// matching ErrConnectionLost and the underlying cause.
type lostError struct{ cause error }

func (e *lostError) Error() string {
	if e.cause == nil {
		return ErrConnectionLost.Error()
	}
	return ErrConnectionLost.Error() + ": " + e.cause.Error()
}

func (e *lostError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrConnectionLost}
	}
	return []error{ErrConnectionLost, e.cause}
}

// HTTPStatus makes a lost connection a 503 for sdk/retry: retried with
// backoff whatever the cause looked like.
func (e *lostError) HTTPStatus() int { return http.StatusServiceUnavailable }
