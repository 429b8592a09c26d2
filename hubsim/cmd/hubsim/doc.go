// Command hubsim runs the Azure service side porthole talks to — Device
// Provisioning Service, IoT hubs and the device-streams endpoint — in one
// process with its own CA, for tests and integration work.
//
// Usage:
//
//	hubsim [-config hubsim.yaml] [-listen 127.0.0.1,127.0.0.2] [-https-port 443]
//	       [-mqtt-port 8883] [-state-dir DIR] [-status-file FILE] [-log-level info]
//	       [-pprof 127.0.0.1:6060]
//
// On start it prints the CA file clients must trust, the ports, the DPS id
// scope and global endpoint, and the service connection strings (these hold
// keys; they are printed, never logged). -status-file writes the same as
// JSON once hubsim is serving, and removes it on exit:
//
//	{"ca_file":…, "admin_token":…, "client_files":[…], "ports":{"https":N,"mqtt":N},
//	 "dps":{"id_scope":…,"global_endpoint":…,"service_connection_string":…},
//	 "hubs":[{"name":…,"hostname":…,"service_connection_string":…}]}
//
// admin_token, fresh on every start, authenticates hubsim's admin API
// (/hubsim/…) and /metrics as "Authorization: Bearer <token>" (README.md
// lists the endpoints). Next to the status file, before it, hubsim writes
// ready client configuration (0600, removed on exit with the status file):
// porthole.yaml and porthole-<hub>.yaml for `porthole --config`, and
// agent-snippet.yaml with the agent's ca_file, resolve lines and DPS
// endpoint.
//
// Devices, twins, queued C2D messages and DPS records live in
// <state-dir>/hubsim.db (see package hubsim/internal/store); a restart on the
// same state dir, even after kill -9, keeps every write it acknowledged.
//
// -pprof serves Go's runtime profiles (heap, goroutines, CPU) under
// /debug/pprof/ on a loopback address, for measuring hubsim at scale
// (`go tool pprof http://127.0.0.1:6060/debug/pprof/heap`); it is off by
// default, refuses any non-loopback address, and the bound address is in
// the status file as "pprof".
//
// SIGINT or SIGTERM shut it down gracefully (exit status 0).
//
// # Fleet planner
//
//	hubsim fleet plan [-plan plan.yaml | -event reprovision|boot|outage ...]
//	       [-devices N] [-quota PER_MINUTE] [-hub-rate PER_SECOND] [-out DIR]
//
// simulates a fleet through the agent's real provisioning code and hubsim's
// real DPS and hubs on a virtual clock (package hubsim/fleetplan) and prints
// a table; fleet-plan.csv and the plots go to -out. It lives in hubsim, not
// in the operator CLI porthole: it runs hubsim's DPS and hub code, which the
// SDK tree must not import.
package main
