package broker

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// WebSocketPath is where device SDKs open MQTT over WebSocket, for IoT Hub
	// and DPS alike; a query string (the Java and Node SDKs add
	// "?iothub-no-client-cert=true") is ignored.
	// Source: Azure/azure-iot-sdk-node device/transport/mqtt/src/mqtt_ws.ts;
	// Azure/azure-iot-sdk-c provisioning_client/src/prov_transport_mqtt_ws_client.c
	// (MQTT_WS_RELATIVE_PATH).
	WebSocketPath = "/$iothub/websocket"

	// wsSubprotocol is the WebSocket subprotocol of MQTT (MQTT 3.1.1 §6). The
	// C SDK offers it as "MQTT" (Azure/azure-iot-sdk-c provisioning_client/src/
	// prov_transport_mqtt_ws_client.c, MQTT_WS_PROTOCOL_NAME), paho and the
	// Node SDK as "mqtt"; it is matched without regard to case and echoed as
	// offered.
	wsSubprotocol = "mqtt"

	// TransportWebSocket is the ConnectInfo.Transport of MQTT over WebSocket.
	TransportWebSocket = "mqtt-ws"
	// TransportTLS is the ConnectInfo.Transport callers of ServeConn should
	// pass for MQTT over TLS.
	TransportTLS = "mqtt"

	wsBufferSize   = 4 << 10
	wsCloseTimeout = time.Second
)

// ServeHTTP serves MQTT over WebSocket on WebSocketPath (anything else gets
// 404): it upgrades the request, echoing the "mqtt" subprotocol when offered
// and declining permessage-deflate, and serves the connection as a byte
// stream (clients split one MQTT packet over many WebSocket messages, and may
// put several packets in one) with transport "mqtt-ws" and TLS state r.TLS.
// It returns when the client is gone.
func (b *Broker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != WebSocketPath {
		http.NotFound(w, r)
		return
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		http.Error(w, "broker closed", http.StatusServiceUnavailable)
		return
	}
	hdr := http.Header{}
	for _, p := range websocket.Subprotocols(r) {
		if strings.EqualFold(p, wsSubprotocol) {
			hdr.Set("Sec-WebSocket-Protocol", p)
			break
		}
	}
	up := websocket.Upgrader{
		ReadBufferSize:  wsBufferSize,
		WriteBufferSize: wsBufferSize,
		// Devices send no Origin; there is no browser session to protect.
		CheckOrigin:       func(*http.Request) bool { return true },
		EnableCompression: false,
	}
	ws, err := up.Upgrade(w, r, hdr) // on failure the upgrader has replied
	if err != nil {
		b.log.Debug("mqtt websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	// One WebSocket message may carry several MQTT packets.
	ws.SetReadLimit(2*int64(b.cfg.MaxPacketSize) + 64<<10)
	_ = b.serve(r.Context(), newWSConn(ws), TransportWebSocket, r.TLS)
}

// wsConn presents a WebSocket as a byte stream. One goroutine reads, one
// writes (gorilla's rule); Close may be called from anywhere.
type wsConn struct {
	ws        *websocket.Conn
	r         io.Reader // current message; owned by the reader
	closeOnce sync.Once
	closeErr  error
}

var _ net.Conn = (*wsConn)(nil)

func newWSConn(ws *websocket.Conn) *wsConn { return &wsConn{ws: ws} }

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			mt, r, err := c.ws.NextReader()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					return 0, io.EOF
				}
				return 0, err
			}
			if mt != websocket.BinaryMessage {
				// MQTT 3.1.1 §6: packets travel in binary frames only.
				return 0, fmt.Errorf("%w: non-binary WebSocket message", ErrProtocol)
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error {
	c.closeOnce.Do(func() {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(wsCloseTimeout))
		c.closeErr = c.ws.Close()
	})
	return c.closeErr
}

// abort closes the underlying connection without a close frame.
func (c *wsConn) abort() { _ = c.ws.NetConn().Close() }

func (c *wsConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.ws.SetReadDeadline(t), c.ws.SetWriteDeadline(t))
}
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
