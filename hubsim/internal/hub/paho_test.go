package hub

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/porthole-iot/porthole/hubsim/internal/broker"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// realBroker serves set through hubsim's MQTT broker on a loopback TLS
// listener and returns the address and a client TLS config.
func realBroker(t *testing.T, set *Set) (addr string, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hub test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)

	b, err := broker.New(broker.Config{Personalities: []broker.Personality{set}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = b.ServeConn(context.Background(), c, "mqtt")
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		_ = set.Close()
		_ = b.Close()
		wg.Wait()
	})
	return ln.Addr().String(), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// TestPahoThroughBroker drives the hub with paho over hubsim's real broker:
// connect with a SAS token, telemetry, twin GET, a method call, a C2D message,
// and a refused CONNECT with CONNACK 0x05.
func TestPahoThroughBroker(t *testing.T) {
	set, err := NewSet(Config{Hubs: []HubConfig{{HostName: "127.0.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	addr, tlsCfg := realBroker(t, set)
	h, _ := set.Hub("127.0.0.1")
	ctx := context.Background()
	d, err := h.CreateDevice(ctx, Device{DeviceID: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	key := d.Authentication.SymmetricKey.PrimaryKey

	connect := func(password string) (mqtt.Client, mqtt.Token) {
		opts := mqtt.NewClientOptions().AddBroker("ssl://" + addr).SetClientID("dev1").SetProtocolVersion(4).
			SetUsername("127.0.0.1/dev1/?api-version=2021-04-12&DeviceClientType=test").SetPassword(password).
			SetTLSConfig(tlsCfg).SetCleanSession(false).SetKeepAlive(180 * time.Second).
			SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(waitTimeout)
		c := mqtt.NewClient(opts)
		tok := c.Connect()
		if !tok.WaitTimeout(waitTimeout) {
			t.Fatal("paho connect timed out")
		}
		return c, tok
	}

	_, tok := connect(sign("127.0.0.1/devices/dev1", key, "", time.Now().Add(-time.Minute), true))
	if ct, ok := tok.(*mqtt.ConnectToken); !ok || ct.ReturnCode() != 5 {
		t.Fatalf("expired token: %v", tok.Error())
	}

	c, tok := connect(sign("127.0.0.1/devices/dev1", key, "", time.Now().Add(time.Hour), true))
	if tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(250)

	got := make(chan mqtt.Message, 16)
	handler := func(_ mqtt.Client, m mqtt.Message) { got <- m }
	for _, f := range []string{"$iothub/twin/res/#", "$iothub/methods/POST/#", "devices/dev1/messages/devicebound/#"} {
		if tk := c.Subscribe(f, 1, handler); !tk.WaitTimeout(waitTimeout) || tk.Error() != nil {
			t.Fatalf("subscribe %s: %v", f, tk.Error())
		}
	}
	next := func() mqtt.Message {
		t.Helper()
		select {
		case m := <-got:
			return m
		case <-time.After(waitTimeout):
			t.Fatal("nothing from the hub")
			return nil
		}
	}

	events, cancel := h.Subscribe(4)
	defer cancel()
	if tk := c.Publish("devices/dev1/messages/events/%24.ct=application%2Fjson", 1, false, `{"t":1}`); !tk.WaitTimeout(waitTimeout) || tk.Error() != nil {
		t.Fatalf("telemetry: %v", tk.Error())
	}
	if ev := <-events; ev.System["$.ct"] != "application/json" {
		t.Errorf("event %+v", ev)
	}

	c.Publish("$iothub/twin/GET/?$rid=abc", 0, false, " ")
	if m := next(); m.Topic() != "$iothub/twin/res/200/?$rid=abc" || !strings.Contains(string(m.Payload()), `"desired":{"$version":1}`) {
		t.Fatalf("twin GET %q %s", m.Topic(), m.Payload())
	}

	res := make(chan MethodResult, 1)
	go func() {
		r, err := h.InvokeMethod(ctx, "dev1", "", MethodRequest{MethodName: "ping"})
		if err != nil {
			t.Error(err)
		}
		res <- r
	}()
	m := next()
	rid := strings.TrimPrefix(m.Topic(), "$iothub/methods/POST/ping/?$rid=")
	c.Publish("$iothub/methods/res/200/?$rid="+rid, 0, false, `"pong"`)
	if r := <-res; r.Status != 200 || string(r.Payload) != `"pong"` {
		t.Fatalf("method %+v", r)
	}

	if err := h.SendC2D(ctx, "dev1", C2DMessage{MessageID: "m1", Body: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	if m := next(); string(m.Payload()) != "hi" || !strings.HasPrefix(m.Topic(), "devices/dev1/messages/devicebound/") || m.Qos() != 1 {
		t.Fatalf("c2d %q %q qos %d", m.Topic(), m.Payload(), m.Qos())
	}

	// Touching another device's topic drops the connection.
	c.Publish("devices/dev2/messages/events/", 0, false, "x")
	testwait.True(t, waitTimeout, "the hub to drop the connection that published to another device's topic", func() bool {
		return !h.Connected("dev1", "")
	})
}
