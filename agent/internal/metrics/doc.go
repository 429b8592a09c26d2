// Package metrics writes the agent's metrics in the Prometheus text
// exposition format (version 0.0.4), by hand: the device binary must not
// link prometheus/client_golang (size), and the agent has a dozen
// metrics whose values it already keeps.
//
// `porthole-agent metrics` prints them (asking the running agent), and
// with metrics.textfile set the agent keeps <dir>/porthole_agent.prom
// current for node_exporter's textfile collector, written crash-safely
// so a scrape never sees half a file.
//
// The metrics:
//
//	porthole_agent_up                      1 while the agent runs (0 in the file it leaves at stop)
//	porthole_agent_build_info{version,goversion}  1
//	porthole_agent_start_time_seconds      when the agent started (Unix time)
//	porthole_agent_uptime_seconds          seconds since then
//	porthole_agent_hub_connected           1 while connected to the hub
//	porthole_agent_phase{phase}            1 for the current phase of the provisioning flow
//	porthole_agent_hub_reconnects_total    hub connections lost (the client reconnects)
//	porthole_agent_dps_registrations_total registrations with DPS
//	porthole_agent_streams_open            streams open now
//	porthole_agent_streams_total{result}   streams accepted / rejected
//	porthole_agent_stream_bytes_total{direction}  bytes to / from stream targets
//	porthole_agent_failing{step}           1 while a step keeps failing (dps, dps lookup, hub)
package metrics
