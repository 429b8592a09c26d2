// Package hubsimtest runs hubsim inside a test, like net/http/httptest
// does for an HTTP server: one line gives a running simulator on free
// loopback ports with its own CA, and t.Cleanup stops it.
//
//	sim := hubsimtest.New(t)
//	client := sim.HTTPClient()            // trusts the sim's CA, dials the sim
//	dial := sim.DialContext               // for clients' dial seams
//	cs := sim.HubConnectionString("hub-eu.local")
//
// The configured host names (hub-eu.local, global.dps.local, …) do not
// resolve; Sim.DialContext maps them, and any port (443 or the picked HTTPS
// port → HTTPS; 8883 or the picked MQTT port → MQTT), to the sim's
// listeners, and refuses every other destination so a test can never reach
// the real cloud by mistake.
//
// Ready SDK client configurations come from package sdkconfig
// (sdkconfig.Device, Provisioning, Service, ProvisioningService);
// WithFastDPS lets registrations finish without the poll interval; the
// package Example goes from enrollment to an open device stream.
// AddFault / ClearFault switch hub and streaming faults on and off
// (refused or dropped connections, 429s, delayed or rejected or cut or
// stalled streams, delayed acks); AdminDo calls the admin API with the
// sim's admin token.
//
// Anything the sim receives and does not handle fails the test at cleanup
// (see AllowUnhandled).
package hubsimtest
