package dps

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/porthole-iot/porthole/hubsim/internal/broker"
)

// TestThroughRealBroker drives the personality through hubsim's broker with
// the paho client, the way a device on plain MQTT would (TLS is the
// server's business, not the personality's).
func TestThroughRealBroker(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RetryAfter = time.Second })
	e.mustPut(symmetricEnrollment("dev1", key1))
	b, err := broker.New(broker.Config{Personalities: []broker.Personality{e.svc.Personality()}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by this test: stopped by ln.Close, waited below
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); _ = b.ServeConn(ctx, c, "mqtt") }()
		}
	}()
	defer func() {
		_ = ln.Close()
		cancel()
		_ = b.Close()
		wg.Wait()
	}()

	msgs := make(chan mqtt.Message, 10)
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + ln.Addr().String()).
		SetClientID("dev1").
		SetUsername(testScope + "/registrations/dev1/api-version=2019-03-31&ClientVersion=test").
		SetPassword(deviceToken(e.clk, "dev1", key1)).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4)
	cl := mqtt.NewClient(opts)
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer cl.Disconnect(100)
	if tok := cl.Subscribe("$dps/registrations/res/#", 1, func(_ mqtt.Client, m mqtt.Message) { msgs <- m }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	next := func() mqtt.Message {
		select {
		case m := <-msgs:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no answer from DPS")
			return nil
		}
	}
	cl.Publish("$dps/registrations/PUT/iotdps-register/?$rid=1", 1, false, `{"registrationId":"dev1"}`).WaitTimeout(10 * time.Second)
	m := next()
	if m.Topic() != "$dps/registrations/res/202/?$rid=1&retry-after=1" {
		t.Fatalf("register answer %q", m.Topic())
	}
	var op RegistrationOperationStatus
	if err := json.Unmarshal(m.Payload(), &op); err != nil {
		t.Fatal(err)
	}
	cl.Publish("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId="+op.OperationID, 1, false, " ").WaitTimeout(10 * time.Second)
	m = next()
	if !strings.HasPrefix(m.Topic(), "$dps/registrations/res/200/?$rid=2") {
		t.Fatalf("poll answer %q", m.Topic())
	}
	if err := json.Unmarshal(m.Payload(), &op); err != nil || op.Status != StatusAssigned {
		t.Fatalf("poll payload %s", m.Payload())
	}

	// A wrong password is refused at CONNECT.
	bad := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + ln.Addr().String()).SetClientID("dev1").
		SetUsername(testScope + "/registrations/dev1/api-version=2019-03-31").SetPassword("SharedAccessSignature sr=x&sig=eA%3D%3D&se=1").
		SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4))
	tok := bad.Connect()
	tok.WaitTimeout(10 * time.Second)
	if tok.Error() == nil {
		bad.Disconnect(0)
		t.Fatal("bad password accepted")
	}
	if !strings.Contains(strings.ToLower(tok.Error().Error()), "not authori") {
		t.Errorf("refusal %v, want CONNACK 5 (not authorized)", tok.Error())
	}
}
