// Package relay is hubsim's streaming endpoint: the gateway that both ends of
// an IoT Hub device stream connect to with a WebSocket, and that copies bytes
// between them.
//
// The hub calls Create when a service asks for a stream; the Ticket carries
// the URL and one single-use Bearer token per side, which the hub hands to
// the device (in the MQTT stream request) and to the service (in the REST
// response). Either side may connect first; the relay holds it until the
// peer arrives or the handshake timeout ends the stream. Once both are
// connected, binary frames are forwarded as they come (frame boundaries
// carry no meaning), and when either side closes or drops, the relay closes
// the other. Idle streams are left alone.
//
// The HTTPS server should accept through WrapListener (under TLS), so that
// each forwarded frame costs one write system call instead of one per TLS
// record; without it the relay corks the socket around each frame instead.
//
// Every stream event (requested, accepted, rejected, connected, closed) is
// written as one JSON line shaped like an Azure resource-log record of the
// DeviceStreams category.
//
// This package must not import porthole's sdk: hubsim and the SDK write the
// wire format independently so that a mistake cannot hide on both sides.
package relay
