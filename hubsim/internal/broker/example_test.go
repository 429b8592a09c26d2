package broker_test

import (
	"context"
	"crypto/tls"
	"log"
	"net"
	"net/http"
	"strings"

	"github.com/porthole-iot/porthole/hubsim/internal/broker"
)

// twinEcho is a toy personality: it serves hub-style usernames and answers
// every twin GET with an empty twin.
type twinEcho struct{}

func (twinEcho) Claims(username string) bool { return strings.Contains(username, "/?api-version=") }

func (twinEcho) Connect(info broker.ConnectInfo, out broker.Outbound) (broker.Session, error) {
	if len(info.Password) == 0 && info.TLS == nil {
		return nil, broker.ErrBadCredentials // → CONNACK 0x04
	}
	return &twinSession{out: out}, nil
}

type twinSession struct{ out broker.Outbound }

func (s *twinSession) Subscribe(filter string, qos byte) (byte, bool) {
	return qos, strings.HasPrefix(filter, "$iothub/")
}
func (s *twinSession) Unsubscribe(string) {}
func (s *twinSession) Publish(topic string, _ []byte, _ byte) error {
	if rid, ok := strings.CutPrefix(topic, "$iothub/twin/GET/?$rid="); ok {
		// Goes to this client only, even if others subscribed to the same filter.
		return s.out.Publish("$iothub/twin/res/200/?$rid="+rid, []byte(`{"desired":{"$version":1},"reported":{"$version":1}}`), 0)
	}
	return nil
}
func (s *twinSession) Disconnected(error) {}

// Example wires a broker to an MQTT/TLS listener and to an HTTPS server for
// MQTT over WebSocket.
func Example() {
	b, err := broker.New(broker.Config{Personalities: []broker.Personality{twinEcho{}}})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close() // disconnects everyone and waits

	var tlsConfig *tls.Config // the simulator's server certificate
	ln, err := tls.Listen("tcp", "127.0.0.1:8883", tlsConfig)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.ServeConn(context.Background(), c, broker.TransportTLS)
		}
	}()

	mux := http.NewServeMux()
	mux.Handle(broker.WebSocketPath, b) // wss://host:443/$iothub/websocket
	srv := &http.Server{Handler: mux, TLSConfig: tlsConfig}
	go srv.ServeTLS(mustListen("127.0.0.1:443"), "", "")
}

func mustListen(addr string) net.Listener {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	return ln
}
