// Package retry is the single place where porthole decides whether a failed
// call to DPS, IoT Hub or the streaming endpoint is retried, and when.
//
// The rules follow Microsoft's guidance for devices that provision through
// DPS ("Best practices for large-scale IoT device deployments",
// MicrosoftDocs/azure-docs articles/iot-dps/concepts-deploy-at-scale.md):
//
//   - 429 Too Many Requests with a Retry-After: wait exactly that long
//     (never earlier), optionally plus a small upward jitter.
//   - 5xx, 408, 429 without Retry-After, and transport failures (connection
//     refused or reset, EOF, DNS, timeouts): exponential backoff with full
//     jitter that never waits less than 5 s (the guidance asks for "at least
//     5 seconds" after a 5xx), doubling the ceiling per attempt up to a cap
//     (default 5 min), so that a fleet hit by the same outage spreads out.
//   - Any other 4xx (400, 401, 403, 404, 409, 412, ...): permanent. For the
//     hub the caller goes back to DPS registration, as the guidance asks for
//     401/403/404.
//   - Context cancellation and deadlines: never retried, returned as they
//     are.
//
// Errors from other packages take part through two small interfaces,
// [StatusCoder] (HTTPStatus() int) and [RetryAfterer] (RetryAfterHint()),
// through [backoff.Permanent] and through the [Transient] marker.
//
// [Do] runs an operation under a [Policy]; [Schedule] is the same logic in a
// stateful form for loops that are not a single function call (for example
// the agent's reconnect loop). Time and randomness are injected through
// [Policy.Clock] and [Policy.Rand], so tests never sleep; package retrytest
// has a fake clock.
package retry
