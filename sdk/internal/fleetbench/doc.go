// Package fleetbench holds porthole's fleet-scale benchmarks. It has no
// code of its own: everything is in its tests, which are skipped unless the
// environment sets PORTHOLE_BENCH=1 (make bench does), because each takes
// minutes of real time.
//
//   - TestFleetStorm: N devices of one symmetric-key enrollment group start
//     registering with an in-process hubsim at the same instant, through the
//     real sdk/dps client over HTTPS and MQTT, against a registration quota
//     that forces 429s. It checks that every device is assigned, that no
//     device came back before the Retry-After it was given (as hubsim
//     counts it and as the client's own connection timing shows), and that
//     the admissions in any quota window stay within 1.2× the quota. In the
//     same run the fleet planner (hubsim/fleetplan: the agent's provisioning
//     code against hubsim's DPS on a virtual clock, no sockets) plans the
//     same storm; its time to converge and peak admissions per window must
//     be within 10% of the socket-level figures, and the table prints both.
//     (A test-only import of hubsim: the import rules bind non-test code.)
//   - TestHubLoad: real sdk/iothub clients connect over MQTT/TLS to the
//     hubsim binary running as its own process, then send QoS 1 telemetry.
//     The clients run in worker processes (the test binary re-run as
//     TestHubLoadWorker, PORTHOLE_BENCH_HUB_WORKERS of them, default 4,
//     each owning a slice of the devices and reporting per-device counts
//     back over a pipe), so the client side is not the bottleneck. With
//     PORTHOLE_BENCH_HUB_DEVICES other than 1,000 the run measures that
//     fleet and a 1,000-device fleet side by side, each against its own
//     hubsim, both connected, telemetry in alternating rounds
//     (PORTHOLE_BENCH_HUB_ROUNDS, default 4), and prints a comparison:
//     msg/s (median round), hubsim CPU-seconds, RSS per device. In the same
//     rounds run the floor (floor_test.go: a minimal Go MQTT/TLS server in
//     its own process, at both sizes, so the table shows how much of the
//     large/small ratio is the machine's) and, with
//     PORTHOLE_BENCH_HUB_BASELINE=<hubsim binary of an earlier build>
//     (make bench builds HUB_BASELINE's), 1,000 devices on that build. It
//     reports connect latency, acknowledged messages per second, hubsim's
//     resident memory with a breakdown (its -pprof runtime.MemStats), and
//     checks that the hub's event tap saw every acknowledged message. The
//     connect storm runs against hubsim's device-connections throttle
//     (100/s unless PORTHOLE_BENCH_HUB_CONNECT_RATE says otherwise; 0 =
//     none), each device retrying refused connects with the agent's policy.
//     PORTHOLE_BENCH_HUB_PROFILE=DIR saves hubsim's heap and goroutine
//     profiles once all devices are connected, and CPU profiles of hubsim
//     and of the client workers over the first telemetry round. An in-process variant runs
//     the same load (at most 1,000 devices) against hubsimtest with the
//     clients in the test. make bench runs it at 10,000 devices.
//   - TestTwinLatency: service-side twin updates against two hubsim
//     binaries side by side, state in a file and in memory, in alternating
//     rounds (PORTHOLE_BENCH_TWIN_ROUNDS); it reports latency p50/p99 and
//     the file's throughput cost as the median of the per-round costs with
//     its spread.
//
// Both write a text table to out/ at the repository root
// (bench-fleet-storm.txt, bench-hub-load.txt) and print it to the test log.
// Sizes and durations can be changed through the environment; see the
// env* constants in the tests.
package fleetbench
