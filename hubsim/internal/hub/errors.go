package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Sentinel errors of the Go API. The REST layer maps each to the Azure error
// code of the same meaning (see restCode).
var (
	ErrDeviceNotFound      = errors.New("hub: device not found")
	ErrModuleNotFound      = errors.New("hub: module not found")
	ErrDeviceAlreadyExists = errors.New("hub: device already exists")
	ErrModuleAlreadyExists = errors.New("hub: module already exists")
	ErrPreconditionFailed  = errors.New("hub: etag does not match")
	ErrDeviceNotOnline     = errors.New("hub: device not online")
	ErrTimeout             = errors.New("hub: device did not answer in time")
	ErrQueueFull           = errors.New("hub: cloud-to-device queue full")
	ErrThrottled           = errors.New("hub: throttled")
	ErrInvalid             = errors.New("hub: invalid argument")
	ErrHubNotFound         = errors.New("hub: no such hub")
	ErrClosed              = errors.New("hub: closed")
)

// restCode maps a Go API error to the Azure error code the REST API answers with.
func restCode(err error) errorCode {
	switch {
	case errors.Is(err, ErrDeviceNotFound):
		return errDeviceNotFound
	case errors.Is(err, ErrModuleNotFound):
		return errModuleNotFound
	case errors.Is(err, ErrDeviceAlreadyExists):
		return errDeviceAlreadyExists
	case errors.Is(err, ErrModuleAlreadyExists):
		return errModuleAlreadyExists
	case errors.Is(err, ErrPreconditionFailed):
		return errPreconditionFailed
	case errors.Is(err, ErrDeviceNotOnline):
		return errDeviceNotOnline
	case errors.Is(err, ErrTimeout):
		return errGatewayTimeout
	case errors.Is(err, ErrQueueFull):
		return errQueueDepth
	case errors.Is(err, ErrThrottled):
		return errThrottling
	case errors.Is(err, ErrTooLarge):
		return errMessageTooLarge
	case errors.Is(err, ErrInvalid):
		return errArgumentInvalid
	case errors.Is(err, ErrHubNotFound):
		return errNotFound
	default:
		return errServer
	}
}

// restErrorBody is the hub's REST error shape: Message is
// "ErrorCode:<name>;<text>". azure-iothub splits Message on ";" and ":" to get
// the code [Azure/azure-iot-sdk-node common/transport/http/src/http.ts
// (parseErrorBody)]; the C# client falls back to the same split and parses the
// name as its enum [Azure/azure-iot-sdk-csharp iothub/service/src/Common/Exceptions/ExceptionHandlingHelper.cs].
type restErrorBody struct {
	Message          string `json:"Message"`
	ExceptionMessage string `json:"ExceptionMessage"`
}

// formatRESTError renders the error body for code with a human message.
func formatRESTError(code errorCode, msg string, now time.Time) []byte {
	// ";" separates the code from the message in Message, so keep the message free of it.
	msg = strings.ReplaceAll(msg, ";", ",")
	b, _ := json.Marshal(restErrorBody{
		Message:          "ErrorCode:" + code.Name + ";" + msg,
		ExceptionMessage: "Tracking ID:hubsim-" + fmt.Sprint(now.UnixNano()) + "-TimeStamp:" + now.UTC().Format("01/02/2006 15:04:05"),
	})
	return b
}

// writeRESTError answers an HTTP request in Azure's error shape.
func writeRESTError(w http.ResponseWriter, code errorCode, msg string, now time.Time) {
	h := w.Header()
	h.Set("Content-Type", contentTypeJSON)
	h.Set(hdrErrorCode, code.Name)
	w.WriteHeader(code.Status)
	_, _ = w.Write(formatRESTError(code, msg, now))
}

// mqttErrorBody is the error body the hub sends on "$iothub/twin/res/<4xx>";
// azure-iot-device-mqtt turns a body carrying "errorCode" into an error with
// its "message" [Azure/azure-iot-sdk-node device/transport/mqtt/src/mqtt_twin_client.ts].
type mqttErrorBody struct {
	ErrorCode    int    `json:"errorCode"`
	TrackingID   string `json:"trackingId"`
	Message      string `json:"message"`
	TimestampUTC string `json:"timestampUtc"`
}

func formatMQTTError(code errorCode, msg string, now time.Time) []byte {
	b, _ := json.Marshal(mqttErrorBody{
		ErrorCode:    code.Number,
		TrackingID:   "hubsim-" + fmt.Sprint(now.UnixNano()),
		Message:      msg,
		TimestampUTC: now.UTC().Format(time.RFC3339Nano),
	})
	return b
}

// contentTypeJSON is sent on every REST body; azure-iothub parses a body only
// when Content-Type contains application/json
// [Azure/azure-iot-sdk-node common/transport/http/src/rest_api_client.ts].
const contentTypeJSON = "application/json; charset=utf-8"
