package broker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestWireBytes pins the exact bytes the broker sends (MQTT 3.1.1 §3).
func TestWireBytes(t *testing.T) {
	pub, err := publishPacket("a/b", []byte("hi"), 1, 0x0102)
	if err != nil {
		t.Fatal(err)
	}
	pub0, err := publishPacket("a", nil, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"CONNACK accepted", connackPacket(connackAccepted, false), []byte{0x20, 0x02, 0x00, 0x00}},
		{"CONNACK session present", connackPacket(connackAccepted, true), []byte{0x20, 0x02, 0x01, 0x00}},
		{"CONNACK refused never has session present", connackPacket(connackNotAuthorized, true), []byte{0x20, 0x02, 0x00, 0x05}},
		{"CONNACK unacceptable protocol", connackPacket(connackBadProtocol, false), []byte{0x20, 0x02, 0x00, 0x01}},
		{"CONNACK identifier rejected", connackPacket(connackBadIdentifier, false), []byte{0x20, 0x02, 0x00, 0x02}},
		{"CONNACK server unavailable", connackPacket(connackUnavailable, false), []byte{0x20, 0x02, 0x00, 0x03}},
		{"CONNACK bad credentials", connackPacket(connackBadCredentials, false), []byte{0x20, 0x02, 0x00, 0x04}},
		{"CONNACK not authorized", connackPacket(connackNotAuthorized, false), []byte{0x20, 0x02, 0x00, 0x05}},
		{"PUBACK", pubackPacket(0x0a0b), []byte{0x40, 0x02, 0x0a, 0x0b}},
		{"SUBACK", subackPacket(7, []byte{0, 1, subackFailure}), []byte{0x90, 0x05, 0x00, 0x07, 0x00, 0x01, 0x80}},
		{"UNSUBACK", unsubackPacket(9), []byte{0xb0, 0x02, 0x00, 0x09}},
		{"PINGRESP", pingrespPacket(), []byte{0xd0, 0x00}},
		{"PUBLISH QoS 1", pub, []byte{0x32, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x01, 0x02, 'h', 'i'}},
		{"PUBLISH QoS 0", pub0, []byte{0x30, 0x03, 0x00, 0x01, 'a'}},
	}
	for _, tt := range tests {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("%s: % x, want % x", tt.name, tt.got, tt.want)
		}
	}
	if WebSocketPath != "/$iothub/websocket" || wsSubprotocol != "mqtt" {
		t.Errorf("WebSocket constants changed: %q %q", WebSocketPath, wsSubprotocol)
	}
}

func TestConnackCode(t *testing.T) {
	tests := []struct {
		err  error
		want byte
	}{
		{nil, 0},
		{ErrBadCredentials, 4},
		{ErrNotAuthorized, 5},
		{ErrServerUnavailable, 3},
		{errors.Join(errors.New("x"), ErrNotAuthorized), 5},
		{errors.New("other"), 3},
		{&RefusedError{Code: 2}, 2},
		{fmt.Errorf("fault: %w", &RefusedError{Code: 1}), 1},
		{&RefusedError{Code: 5}, 5},
		{&RefusedError{Code: 0}, 3},
		{&RefusedError{Code: 9}, 3},
	}
	for _, tt := range tests {
		if got := connackCode(tt.err); got != tt.want {
			t.Errorf("connackCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestReadPacket(t *testing.T) {
	connect := encodeClient(t, connectPacket("dev1", "u", "p", 60, true))
	tests := []struct {
		name    string
		in      []byte
		max     int
		wantErr error // nil: success
		anyErr  bool
	}{
		{name: "connect", in: connect, max: 1024},
		{name: "too large", in: []byte{0x30, 0x80, 0x08}, max: 1000, wantErr: ErrPacketTooLarge},
		{name: "five-byte length", in: []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, max: 1 << 30, wantErr: ErrProtocol},
		{name: "truncated", in: connect[:len(connect)-1], max: 1024, wantErr: io.ErrUnexpectedEOF},
		{name: "bad flags", in: []byte{0xc1, 0x00}, max: 1024, wantErr: ErrProtocol},
		{name: "QoS 3", in: []byte{0x36, 0x00}, max: 1024, wantErr: ErrProtocol},
		{name: "MQTT 5 connect", in: func() []byte { b := bytes.Clone(connect); b[8] = 5; return b }(), max: 1024, wantErr: errUnsupportedVersion},
		{name: "not MQTT", in: func() []byte { b := bytes.Clone(connect); b[4] = 'X'; return b }(), max: 1024, wantErr: ErrProtocol},
		{name: "pingreq with body", in: []byte{0xc0, 0x01, 0x00}, max: 1024, wantErr: ErrProtocol},
		{name: "empty", in: nil, max: 1024, wantErr: io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pk, err := readPacket(bufio.NewReader(bytes.NewReader(tt.in)), tt.max)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if pk.Connect.ClientIdentifier != "dev1" || string(pk.Connect.Password) != "p" || pk.Connect.Keepalive != 60 {
					t.Errorf("decoded %+v", pk.Connect)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// FuzzReadPacket feeds arbitrary bytes to the packet reader: it must never
// panic, never accept more than the limit, and whatever it accepts must be a
// packet type a client may send.
func FuzzReadPacket(f *testing.F) {
	seeds := []packets.Packet{
		connectPacket("dev1", "hub/dev1/?api-version=2021-04-12", "SharedAccessSignature sr=a&sig=b&se=1", 240, false),
		{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 1, TopicName: "devices/d/messages/events/", Payload: []byte("{}")},
		{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: 2, Filters: packets.Subscriptions{{Filter: "$iothub/twin/res/#", Qos: 1}}},
		{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe}, PacketID: 3, Filters: packets.Subscriptions{{Filter: "a/+"}}},
		{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 4},
		{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}},
		{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}},
	}
	for _, pk := range seeds {
		f.Add(encodeClient(f, pk))
	}
	f.Add([]byte{0x82, 0x03, 0x00, 0x01, 0x00})       // SUBSCRIBE without a QoS byte
	f.Add([]byte{0x10, 0x04, 0x00, 0x04, 'M', 'Q'})   // truncated CONNECT
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}) // overlong length
	const limit = 4096
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReader(bytes.NewReader(in))
		for {
			pk, err := readPacket(br, limit)
			if err != nil {
				return
			}
			if pk.FixedHeader.Remaining > limit {
				t.Fatalf("accepted %d bytes over the limit", pk.FixedHeader.Remaining)
			}
			switch pk.FixedHeader.Type {
			case packets.Connect, packets.Publish, packets.Puback, packets.Pubrec, packets.Pubrel,
				packets.Pubcomp, packets.Subscribe, packets.Unsubscribe, packets.Pingreq, packets.Disconnect:
			default:
				t.Fatalf("accepted a %s from a client", packetName(pk.FixedHeader.Type))
			}
		}
	})
}
