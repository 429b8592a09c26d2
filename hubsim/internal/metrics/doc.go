// Package metrics serves hubsim's Prometheus metrics (text exposition
// format, prometheus/client_golang; hubsim only, never the device agent).
// A collector reads the components' counters at scrape time, so the hot
// paths only bump atomics and nothing here runs between scrapes.
//
// Metrics (hub: the hub's host name):
//
//	hubsim_devices{hub}                          registered device identities
//	hubsim_devices_connected{hub}                devices with a live MQTT connection
//	hubsim_connects_total{hub}                   accepted MQTT connections
//	hubsim_disconnects_total{hub}                ended MQTT connections
//	hubsim_messages_in_total{hub}                device-to-cloud telemetry messages
//	hubsim_messages_out_total{hub}               PUBLISHes sent to devices
//	hubsim_twin_operations_total{hub,op}         op: get, patch
//	hubsim_method_calls_total{hub}               direct method invocations
//	hubsim_c2d_messages_total{hub,state}         state: queued, delivered
//	hubsim_throttled_total{hub}                  429 answers of the hub's service REST API
//	hubsim_streams_open{hub}                     streams not ended (waiting or connected)
//	hubsim_streams_total{hub}                    streams created
//	hubsim_stream_bytes_total{hub,direction}     direction: device_to_service, service_to_device
//	hubsim_dps_requests_total{kind}              kind: register, lookup, poll
//	hubsim_dps_registrations_total{outcome}      outcome: assigned, failed, disabled, unauthorized
//	hubsim_dps_throttled_total{reason}           reason: quota, fault
//
// The handler sits behind the admin credential (package admin).
package metrics
