// Package topic builds and parses every MQTT topic and CONNECT username the
// porthole device uses with IoT Hub (telemetry, cloud-to-device, twin,
// direct methods, device streams) and with DPS (register, poll, responses),
// including the percent-encoded property bags.
//
// Builders for device-to-service topics return strings whose exact bytes
// are pinned by tests; parsers for service-to-device topics return typed
// structs and errors wrapping ErrBadTopic, ErrBadProperty or ErrBadEscape.
// Each parsed type also renders itself back (Topic), which the fuzz tests
// use (parse(build(x)) == x) and which fakes in tests can use.
//
// All wire literals live in wire.go with the upstream source of each.
// Request ids ($rid) are opaque: builders put them in raw and parsers hand
// them back raw, so callers should use URL-safe ids (e.g. a decimal counter).
package topic
