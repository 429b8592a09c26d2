package broker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Wire constants of MQTT 3.1.1 (OASIS Standard, 29 October 2014), the version
// the Azure device SDKs speak to IoT Hub and DPS (Azure/azure-iot-sdk-c
// iothub_client/src/iothubtransport_mqtt_common.c and provisioning_client/src/
// prov_transport_mqtt_common.c both connect with MQTT 3.1.1).
const (
	// protocolLevel311 is the CONNECT protocol level of MQTT 3.1.1 (§3.1.2.2).
	protocolLevel311 byte = 4

	// CONNACK return codes (§3.2.2.3).
	connackAccepted        byte = 0x00
	connackBadProtocol     byte = 0x01 // unacceptable protocol version
	connackBadIdentifier   byte = 0x02 // identifier rejected
	connackUnavailable     byte = 0x03 // server unavailable
	connackBadCredentials  byte = 0x04 // bad user name or password
	connackNotAuthorized   byte = 0x05 // not authorized
	subackFailure          byte = 0x80 // SUBACK return code "Failure" (§3.9.3)
	maxVariableLengthBytes      = 4    // Remaining Length is at most 4 bytes (§2.2.3)
	maxGrantedQoS          byte = 1    // this broker never grants QoS 2
	maxTopicLength              = 65535
)

// connackCode maps a Personality.Connect error to its CONNACK return code.
// Errors that wrap none of the sentinels are server-side failures and map to
// "server unavailable".
func connackCode(err error) byte {
	var refused *RefusedError
	switch {
	case err == nil:
		return connackAccepted
	case errors.As(err, &refused):
		if refused.Code >= connackBadProtocol && refused.Code <= connackNotAuthorized {
			return refused.Code
		}
		return connackUnavailable
	case errors.Is(err, ErrBadCredentials):
		return connackBadCredentials
	case errors.Is(err, ErrNotAuthorized):
		return connackNotAuthorized
	default:
		return connackUnavailable
	}
}

// readPacket reads one MQTT 3.1.1 control packet from r. Packets whose
// remaining length exceeds maxSize are refused with ErrPacketTooLarge before
// their body is read. The returned packet owns its memory.
func readPacket(r *bufio.Reader, maxSize int) (packets.Packet, error) {
	var pk packets.Packet
	hb, err := r.ReadByte()
	if err != nil {
		return pk, err
	}
	err = readPacketInto(&pk, hb, r, maxSize)
	return pk, err
}

// readPacketInto is readPacket into pk (zero on entry) for a packet whose
// first byte, hb, was already read. pk is filled by pointer: a
// packets.Packet is 800 bytes, and copies of it in the frames of a
// connection's reader made its stack outgrow 8 KiB on every packet.
func readPacketInto(pk *packets.Packet, hb byte, r *bufio.Reader, maxSize int) error {
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return fmt.Errorf("%w: fixed header: %v", ErrProtocol, err)
	}
	n, err := readLength(r)
	if err != nil {
		return err
	}
	if n > maxSize {
		return fmt.Errorf("%w: %d bytes (limit %d)", ErrPacketTooLarge, n, maxSize)
	}
	pk.FixedHeader.Remaining = n
	pk.ProtocolVersion = protocolLevel311
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if pk.FixedHeader.Type == packets.Connect {
		if err := checkConnectVersion(body); err != nil {
			return err
		}
	}
	if err := decodeBody(pk, body); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrProtocol, packetName(pk.FixedHeader.Type), err)
	}
	return nil
}

// readLength reads the Remaining Length variable byte integer (§2.2.3).
func readLength(r io.ByteReader) (int, error) {
	var v, mul int = 0, 1
	for i := 0; i < maxVariableLengthBytes; i++ {
		b, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		v += int(b&0x7f) * mul
		if b&0x80 == 0 {
			return v, nil
		}
		mul *= 128
	}
	return 0, fmt.Errorf("%w: remaining length longer than %d bytes", ErrProtocol, maxVariableLengthBytes)
}

// decodeBody decodes the variable header and payload of pk from body.
func decodeBody(pk *packets.Packet, body []byte) error {
	switch pk.FixedHeader.Type {
	case packets.Connect:
		return pk.ConnectDecode(body)
	case packets.Publish:
		return pk.PublishDecode(body)
	case packets.Puback:
		return pk.PubackDecode(body)
	case packets.Pubrec:
		return pk.PubrecDecode(body)
	case packets.Pubrel:
		return pk.PubrelDecode(body)
	case packets.Pubcomp:
		return pk.PubcompDecode(body)
	case packets.Subscribe:
		return pk.SubscribeDecode(body)
	case packets.Unsubscribe:
		return pk.UnsubscribeDecode(body)
	case packets.Pingreq, packets.Disconnect:
		if len(body) != 0 {
			return errors.New("unexpected payload")
		}
		return nil
	default:
		// CONNACK, SUBACK, UNSUBACK, PINGRESP go server→client only; AUTH and
		// type 0 do not exist in 3.1.1.
		return errors.New("packet type not accepted from a client")
	}
}

func packetName(t byte) string {
	if n, ok := packets.PacketNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type %d", t)
}

// errUnsupportedVersion: a CONNECT of another MQTT version, to be answered
// with CONNACK 0x01.
var errUnsupportedVersion = errors.New("broker: unsupported MQTT protocol level")

// checkConnectVersion accepts only protocol name "MQTT" at level 4 (§3.1.2.1,
// §3.1.2.2). Other levels of MQTT (3.1 "MQIsdp", 5) get errUnsupportedVersion;
// anything else is not MQTT at all.
func checkConnectVersion(body []byte) error {
	name, level, ok := peekConnectVersion(body)
	switch {
	case !ok:
		return fmt.Errorf("%w: truncated CONNECT", ErrProtocol)
	case name != "MQTT" && name != "MQIsdp":
		return fmt.Errorf("%w: CONNECT protocol name %q", ErrProtocol, name)
	case name != "MQTT" || level != protocolLevel311:
		return fmt.Errorf("%w: %q level %d", errUnsupportedVersion, name, level)
	}
	return nil
}

// peekConnectVersion reads the protocol name and level from a CONNECT body
// without decoding the rest, so a client speaking another MQTT version can be
// answered with CONNACK 0x01 (§3.1.2.2) even when the rest of its CONNECT
// would not parse as 3.1.1.
func peekConnectVersion(body []byte) (name string, level byte, ok bool) {
	if len(body) < 2 {
		return "", 0, false
	}
	n := int(body[0])<<8 | int(body[1])
	if len(body) < 2+n+1 {
		return "", 0, false
	}
	return string(body[2 : 2+n]), body[2+n], true
}

// encode serialises pk (MQTT 3.1.1) into a fresh byte slice.
func encode(pk packets.Packet) ([]byte, error) {
	pk.ProtocolVersion = protocolLevel311
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Suback:
		err = pk.SubackEncode(&buf)
	case packets.Unsuback:
		err = pk.UnsubackEncode(&buf)
	case packets.Pingresp:
		err = pk.PingrespEncode(&buf)
	default:
		err = fmt.Errorf("broker: cannot encode %s", packetName(pk.FixedHeader.Type))
	}
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// connackPacket encodes a CONNACK; sessionPresent is only ever true with
// code 0 (MQTT 3.1.1 §3.2.2.2).
func connackPacket(code byte, sessionPresent bool) []byte {
	b, _ := encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack},
		ReasonCode: code, SessionPresent: sessionPresent && code == connackAccepted})
	return b
}

func pubackPacket(id uint16) []byte {
	b, _ := encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id})
	return b
}

func subackPacket(id uint16, codes []byte) []byte {
	b, _ := encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Suback}, PacketID: id, ReasonCodes: codes})
	return b
}

func unsubackPacket(id uint16) []byte {
	b, _ := encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsuback}, PacketID: id})
	return b
}

func pingrespPacket() []byte {
	b, _ := encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingresp}})
	return b
}

func publishPacket(topic string, payload []byte, qos byte, id uint16) ([]byte, error) {
	return encode(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		Payload:     payload,
		PacketID:    id,
	})
}
