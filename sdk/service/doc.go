// Package service is porthole's service-side SDK: what an operator's tool or
// a back end runs to reach devices through Azure IoT Hub, and to enroll
// devices in the Device Provisioning Service (DPS).
//
// A Client holds a hub's shared-access-policy connection string
// ("HostName=<hub>.azure-devices.net;SharedAccessKeyName=iothubowner;
// SharedAccessKey=…") and offers:
//
//   - OpenStream: ask a device for a device stream ("ssh") and connect to the
//     streaming endpoint; the result is a *stream.Conn (a net.Conn).
//   - InvokeMethod: call a direct method.
//   - GetTwin, UpdateTwin: read and patch a device twin.
//   - CreateDevice, GetDevice, DeleteDevice: the device registry.
//
// A DPSClient holds a DPS service connection string and manages individual
// enrollments, enrollment groups and registration states.
//
// The same code talks to Azure and to hubsim: Config.RootCAs trusts a
// private CA and Config.DialContext maps host names to addresses.
//
// # Errors
//
// A request the service refused returns an *Error carrying the HTTP status,
// the service's error code (e.g. "DeviceNotOnline", 404103) and message.
// errors.Is matches it against ErrDeviceNotOnline, ErrNotFound,
// ErrThrottled, ErrTimeout, ErrUnauthorized, ErrConflict and
// ErrPreconditionFailed. *Error implements sdk/retry's StatusCoder and
// RetryAfterer, so retry.Do retries 429 (after its Retry-After), 5xx and
// 408 and gives up on the rest. A device that rejects a stream yields
// ErrStreamRejected.
//
// # Secrets
//
// Nothing here logs a key or a token. Device and enrollment values returned
// by the services can hold keys (Device.Authentication,
// AttestationMechanism.SymmetricKey); their String methods hide them, but
// encoding them as JSON does not.
//
// # Goroutines
//
// Clients start no goroutines of their own; Close releases idle HTTP
// connections. Streams returned by OpenStream belong to the caller.
package service
