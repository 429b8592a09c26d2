// Package admin is hubsim's own HTTP API under /hubsim/…: what runs in the
// simulator (hubs, DPS counters, streaming endpoints, unhandled requests),
// the live telemetry tap, cloud-to-device messages and forced disconnects,
// and the fault switches. It has no Azure counterpart and is the only
// backend of the future browser dashboard.
//
// The API reads and drives the components through narrow interfaces
// (Hubs, DPS, Relay, Faults), so it owns no simulator state. Every endpoint
// requires a credential (Authorizer): the admin token hubsim generates at
// start and writes to its 0600 status file, sent as
// "Authorization: Bearer <token>", or a shared access signature of an
// owner policy of one of the hubs or of the DPS
// ("Authorization: SharedAccessSignature sr=…&sig=…&se=…&skn=iothubowner").
// Anything else answers 401 in the hub's error shape. /healthz is not part
// of this package and stays open.
//
// Routes are Go 1.22 method+path patterns registered on hubsim's one
// http.ServeMux (RegisterRoutes); README.md lists them.
package admin
