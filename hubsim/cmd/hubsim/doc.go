// Command hubsim runs the Azure service side porthole talks to — Device
// Provisioning Service, IoT hubs and the device-streams endpoint — in one
// process with its own CA, for tests and integration work.
//
// Usage:
//
//	hubsim [-config hubsim.yaml] [-listen 127.0.0.1,127.0.0.2] [-https-port 443]
//	       [-mqtt-port 8883] [-state-dir DIR] [-status-file FILE] [-log-level info]
//
// On start it prints the CA file clients must trust, the ports, the DPS id
// scope and global endpoint, and the service connection strings (these hold
// keys; they are printed, never logged). -status-file writes the same as
// JSON once hubsim is serving, and removes it on exit:
//
//	{"ca_file":…, "ports":{"https":N,"mqtt":N},
//	 "dps":{"id_scope":…,"global_endpoint":…,"service_connection_string":…},
//	 "hubs":[{"name":…,"hostname":…,"service_connection_string":…}]}
//
// Devices, twins, queued C2D messages and DPS records live in
// <state-dir>/hubsim.db (see package hubsim/internal/store); a restart on the
// same state dir, even after kill -9, keeps every write it acknowledged.
//
// SIGINT or SIGTERM shut it down gracefully (exit status 0).
package main
