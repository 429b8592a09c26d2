package broker

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"
)

// pahoConnect connects a paho client and returns it with its CONNECT token.
func pahoConnect(t *testing.T, url string, tlsCfg *tls.Config, id, username string) (mqtt.Client, mqtt.Token) {
	t.Helper()
	opts := mqtt.NewClientOptions().
		AddBroker(url).
		SetClientID(id).
		SetProtocolVersion(4). // else paho retries a refused CONNECT as MQTT 3.1
		SetUsername(username).
		SetPassword("SharedAccessSignature sr=x&sig=y&se=1").
		SetTLSConfig(tlsCfg).
		SetCleanSession(false). // as the hub device SDKs connect
		SetKeepAlive(180 * time.Second).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(waitTimeout)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(waitTimeout) {
		t.Fatal("paho connect timed out")
	}
	t.Cleanup(func() {
		if c.IsConnected() {
			c.Disconnect(250)
		}
	})
	return c, tok
}

// exercise runs a device-like conversation through a connected paho client.
func exercise(t *testing.T, p *fakePersonality, c mqtt.Client, id string) {
	t.Helper()
	got := make(chan mqtt.Message, 10)
	tok := c.Subscribe("$iothub/twin/res/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m })
	if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	tok = c.Publish("$iothub/twin/GET/?$rid=1", 1, false, " ")
	if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	e := p.rec.waitKind(t, "publish", id)
	if e.topic != "$iothub/twin/GET/?$rid=1" || string(e.payload) != " " || e.qos != 1 {
		t.Fatalf("session got %+v", e)
	}
	if err := p.out(t, id).Publish("$iothub/twin/res/200/?$rid=1", []byte(`{"desired":{}}`), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Topic() != "$iothub/twin/res/200/?$rid=1" || string(m.Payload()) != `{"desired":{}}` || m.Qos() != 1 {
			t.Fatalf("paho got %q %q QoS %d", m.Topic(), m.Payload(), m.Qos())
		}
	case <-time.After(waitTimeout):
		t.Fatal("paho got nothing")
	}
	c.Disconnect(250)
	if e := p.rec.waitKind(t, "disconnected", id); e.err != nil {
		t.Errorf("Disconnected(%v) after paho Disconnect, want nil", e.err)
	}
}

func TestPahoOverTLS(t *testing.T) {
	p := newFake("hub/")
	h := newHarness(t, false, Config{Personalities: []Personality{p}})
	c, tok := pahoConnect(t, "ssl://"+h.addr, h.client, "dev1", "hub/dev1/?api-version=2021-04-12")
	if tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	exercise(t, p, c, "dev1")

	p.setConnectErr(ErrNotAuthorized)
	_, tok = pahoConnect(t, "ssl://"+h.addr, h.client, "dev2", "hub/dev2")
	if code := tok.(*mqtt.ConnectToken).ReturnCode(); code != 0x05 {
		t.Errorf("paho saw CONNACK 0x%02x, want 0x05", code)
	}
}

// newWSServer serves b through httptest's TLS server.
func newWSServer(t *testing.T, p Personality) (*Broker, *httptest.Server, *tls.Config) {
	t.Helper()
	b, err := New(Config{Logger: testLogger(t), Personalities: []Personality{p}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(b)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { b.Close() }) // runs first: ends the hijacked connections
	return b, srv, srv.Client().Transport.(*http.Transport).TLSClientConfig
}

func TestPahoOverWebSocket(t *testing.T) {
	p := newFake("hub/")
	_, srv, tlsCfg := newWSServer(t, p)
	url := "wss://" + srv.Listener.Addr().String() + WebSocketPath
	c, tok := pahoConnect(t, url, tlsCfg, "dev1", "hub/dev1/?api-version=2021-04-12")
	if tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	info := p.rec.waitKind(t, "connect", "dev1").info
	if info.Transport != "mqtt-ws" || info.TLS == nil || info.LocalAddr != srv.Listener.Addr().String() || info.Remote == "" {
		t.Errorf("ConnectInfo = %+v", info)
	}
	exercise(t, p, c, "dev1")
}

// dialWS opens a WebSocket to srv and presents it as a byte stream.
func dialWS(t *testing.T, srv *httptest.Server, tlsCfg *tls.Config, protos []string) (*rawClient, *http.Response) {
	t.Helper()
	d := websocket.Dialer{TLSClientConfig: tlsCfg, Subprotocols: protos, EnableCompression: true, HandshakeTimeout: waitTimeout}
	ws, resp, err := d.Dial("wss://"+srv.Listener.Addr().String()+WebSocketPath+"?iothub-no-client-cert=true", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newWSConn(ws)
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c, br: bufio.NewReader(c)}, resp
}

func TestWebSocketHandshake(t *testing.T) {
	p := newFake("hub/")
	_, srv, tlsCfg := newWSServer(t, p)
	tests := []struct {
		offered []string
		want    string
	}{
		{[]string{"mqtt"}, "mqtt"},
		{[]string{"MQTT"}, "MQTT"}, // as the C SDK offers it
		{[]string{"mqttv3.1", "mqtt"}, "mqtt"},
		{nil, ""},
	}
	for _, tt := range tests {
		c, resp := dialWS(t, srv, tlsCfg, tt.offered)
		if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != tt.want {
			t.Errorf("offered %q: subprotocol %q, want %q", tt.offered, got, tt.want)
		}
		if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
			t.Errorf("offered deflate: got extensions %q, want none", ext)
		}
		if code := c.connect("dev1", "hub/dev1", 0); code != 0 {
			t.Errorf("CONNACK 0x%02x", code)
		}
		c.conn.Close()
	}

	// Any other path is not found.
	resp, err := srv.Client().Get(srv.URL + "/devices/dev1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET elsewhere: %d, want 404", resp.StatusCode)
	}
}

func TestWebSocketSplitPackets(t *testing.T) {
	p := newFake("hub/")
	_, srv, tlsCfg := newWSServer(t, p)
	c, _ := dialWS(t, srv, tlsCfg, []string{"mqtt"})
	ws := c.conn.(*wsConn).ws

	// CONNECT, one byte per WebSocket message.
	for _, x := range encodeClient(t, connectPacket("dev1", "hub/dev1/?api-version=2021-04-12", "SharedAccessSignature sr=x", 240, false)) {
		if err := ws.WriteMessage(websocket.BinaryMessage, []byte{x}); err != nil {
			t.Fatal(err)
		}
	}
	if ack := c.mustRead(packets.Connack); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK 0x%02x", ack.ReasonCode)
	}
	// SUBSCRIBE in three uneven pieces, then two PINGREQs and a PUBLISH in one message.
	sub := encodeClient(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: 3,
		Filters: packets.Subscriptions{{Filter: "$iothub/streams/POST/#"}, {Filter: "$iothub/streams/res/#"}}})
	for _, part := range [][]byte{sub[:1], sub[1:5], sub[5:]} {
		if err := ws.WriteMessage(websocket.BinaryMessage, part); err != nil {
			t.Fatal(err)
		}
	}
	if ack := c.mustRead(packets.Suback); string(ack.ReasonCodes) != "\x00\x00" {
		t.Fatalf("SUBACK % x", ack.ReasonCodes)
	}
	ping := encodeClient(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	pub := encodeClient(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "$iothub/streams/res/200/?$rid=1"})
	batch := append(append(append([]byte{}, ping...), ping...), pub...)
	if err := ws.WriteMessage(websocket.BinaryMessage, batch); err != nil {
		t.Fatal(err)
	}
	c.mustRead(packets.Pingresp)
	c.mustRead(packets.Pingresp)
	if e := p.rec.waitKind(t, "publish", "dev1"); e.topic != "$iothub/streams/res/200/?$rid=1" {
		t.Errorf("session got %q", e.topic)
	}
	info := p.rec.waitKind(t, "connect", "dev1").info
	if info.Keepalive != 240 || info.Transport != TransportWebSocket {
		t.Errorf("ConnectInfo = %+v", info)
	}

	// A text message breaks MQTT over WebSocket (MQTT 3.1.1 §6).
	if err := ws.WriteMessage(websocket.TextMessage, ping); err != nil {
		t.Fatal(err)
	}
	c.expectClosed()
	if e := p.rec.waitKind(t, "disconnected", "dev1"); !errors.Is(e.err, ErrProtocol) {
		t.Errorf("Disconnected(%v), want ErrProtocol", e.err)
	}
}

func TestWebSocketAfterClose(t *testing.T) {
	p := newFake("hub/")
	b, srv, _ := newWSServer(t, p)
	b.Close()
	resp, err := srv.Client().Get(srv.URL + WebSocketPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d after Close, want 503", resp.StatusCode)
	}
}

func TestWebSocketKeepalive(t *testing.T) {
	t.Parallel()
	p := newFake("hub/")
	_, srv, tlsCfg := newWSServer(t, p)
	c, _ := dialWS(t, srv, tlsCfg, []string{"mqtt"})
	c.connect("dev1", "hub/dev1", 1)
	c.expectClosed()
	if e := p.rec.waitKind(t, "disconnected", "dev1"); !errors.Is(e.err, ErrKeepaliveTimeout) {
		t.Errorf("Disconnected(%v), want ErrKeepaliveTimeout", e.err)
	}
}
