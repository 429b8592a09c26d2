package dps

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/broker"
)

type published struct {
	topic   string
	payload []byte
	qos     byte
}

// fakeOutbound records what the personality sends to one client.
type fakeOutbound struct {
	mu     sync.Mutex
	msgs   []published
	closed bool
}

func (f *fakeOutbound) Publish(topic string, payload []byte, qos byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return broker.ErrClosed
	}
	f.msgs = append(f.msgs, published{topic, append([]byte(nil), payload...), qos})
	return nil
}

func (f *fakeOutbound) Subscribed(topic string) bool { return strings.HasPrefix(topic, topicResPrefix) }

func (f *fakeOutbound) Close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
}

func (f *fakeOutbound) last(t *testing.T) published {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.msgs) == 0 {
		t.Fatal("nothing published")
	}
	return f.msgs[len(f.msgs)-1]
}

func TestParseUsername(t *testing.T) {
	tests := []struct {
		in                 string
		scope, reg, apiVer string
		ok                 bool
	}{
		{"0ne00ABC/registrations/dev1/api-version=2019-03-31&ClientVersion=azure-iot-provisioning-device-mqtt%2F1.8.1", "0ne00ABC", "dev1", "2019-03-31", true},
		{"0ne00ABC/registrations/dev1/api-version=2021-06-01", "0ne00ABC", "dev1", "2021-06-01", true},
		{"myhub.azure-devices.net/dev1/?api-version=2021-04-12", "", "", "", false},
		{"0ne00ABC/registrations//api-version=1", "", "", "", false},
		{"0ne00ABC/devices/dev1/api-version=1", "", "", "", false},
		{"a/b/registrations/dev1/api-version=1", "", "", "", false},
		{"", "", "", "", false},
	}
	p := mqttPersonality{}
	for _, tc := range tests {
		scope, reg, v, ok := parseUsername(tc.in)
		if ok != tc.ok || scope != tc.scope || reg != tc.reg || v != tc.apiVer {
			t.Errorf("parseUsername(%q) = %q %q %q %v", tc.in, scope, reg, v, ok)
		}
		if p.Claims(tc.in) != tc.ok {
			t.Errorf("Claims(%q) != %v", tc.in, tc.ok)
		}
	}
}

func TestMQTTConnect(t *testing.T) {
	e := newEnv(t, nil)
	e.mustPut(symmetricEnrollment("dev1", key1))
	p := e.svc.Personality()
	user := testScope + "/registrations/dev1/api-version=2019-03-31&ClientVersion=x"
	tests := []struct {
		name    string
		info    broker.ConnectInfo
		wantErr error
	}{
		{"good", broker.ConnectInfo{ClientID: "dev1", Username: user, Password: []byte(deviceToken(e.clk, "dev1", key1))}, nil},
		{"bad key", broker.ConnectInfo{ClientID: "dev1", Username: user, Password: []byte(deviceToken(e.clk, "dev1", ownerKey))}, broker.ErrNotAuthorized},
		{"no password", broker.ConnectInfo{ClientID: "dev1", Username: user}, broker.ErrNotAuthorized},
		{"client id differs", broker.ConnectInfo{ClientID: "dev2", Username: user, Password: []byte(deviceToken(e.clk, "dev1", key1))}, broker.ErrBadCredentials},
		{"unknown scope", broker.ConnectInfo{ClientID: "dev1", Username: "0neNOPE/registrations/dev1/api-version=1", Password: []byte(deviceToken(e.clk, "dev1", key1))}, broker.ErrBadCredentials},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := p.Connect(tc.info, &fakeOutbound{})
			if tc.wantErr == nil {
				if err != nil || s == nil {
					t.Fatalf("Connect: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Connect error %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestMQTTRegisterAndPoll(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AssignDelay = 2 * time.Second })
	e.mustPut(symmetricEnrollment("dev1", key1))
	out := &fakeOutbound{}
	sess, err := e.svc.Personality().Connect(broker.ConnectInfo{
		ClientID: "dev1", Username: testScope + "/registrations/dev1/api-version=2019-03-31",
		Password: []byte(deviceToken(e.clk, "dev1", key1)), Transport: "mqtt", Remote: "127.0.0.1:50000",
	}, out)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Disconnected(nil)
	if g, ok := sess.Subscribe("$dps/registrations/res/#", 1); !ok || g != 1 {
		t.Fatalf("subscribe: %d %v", g, ok)
	}
	if _, ok := sess.Subscribe("$iothub/twin/res/#", 1); ok {
		t.Error("foreign subscription granted")
	}

	// Each SDK's register body shape (C#: empty, C: JSON at QoS 0, Node: JSON).
	for i, body := range []string{"", `{"registrationId":"dev1"}`, `{"registrationId":"dev1","payload":{"a":1}}`} {
		rid := []string{"1", "7", "42"}[i]
		if err := sess.Publish("$dps/registrations/PUT/iotdps-register/?$rid="+rid, []byte(body), byte(i%2)); err != nil {
			t.Fatalf("publish register: %v", err)
		}
		m := out.last(t)
		if m.topic != "$dps/registrations/res/202/?$rid="+rid+"&retry-after=2" || m.qos != 1 {
			t.Fatalf("register answer topic %q qos %d", m.topic, m.qos)
		}
	}
	var st RegistrationOperationStatus
	if err := json.Unmarshal(out.last(t).payload, &st); err != nil || st.Status != StatusAssigning {
		t.Fatalf("register payload %s", out.last(t).payload)
	}
	pollTopic := "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=43&operationId=" + st.OperationID
	if err := sess.Publish(pollTopic, []byte(" "), 1); err != nil {
		t.Fatal(err)
	}
	if m := out.last(t); m.topic != "$dps/registrations/res/202/?$rid=43&retry-after=2" {
		t.Fatalf("early poll topic %q", m.topic)
	}
	e.clk.Advance(2 * time.Second)
	if err := sess.Publish(pollTopic, nil, 1); err != nil {
		t.Fatal(err)
	}
	m := out.last(t)
	if m.topic != "$dps/registrations/res/200/?$rid=43" {
		t.Fatalf("terminal poll topic %q", m.topic)
	}
	var done RegistrationOperationStatus
	if err := json.Unmarshal(m.payload, &done); err != nil || done.Status != StatusAssigned || done.RegistrationState.AssignedHub == "" {
		t.Fatalf("terminal payload %s", m.payload)
	}

	// Unknown topics are refused (the broker disconnects) and recorded.
	if err := sess.Publish("$dps/registrations/POST/whatever/?$rid=1", nil, 1); !errors.Is(err, broker.ErrNotAuthorized) {
		t.Errorf("unknown topic: %v", err)
	}
	if err := sess.Publish("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=9", nil, 1); err == nil {
		t.Error("poll without operationId accepted")
	}
	if u := e.svc.Unhandled(); len(u) != 3 {
		t.Errorf("Unhandled = %q", u)
	}
	e.svc.mu.Lock()
	e.svc.unhandled = nil
	e.svc.mu.Unlock()
}

func TestMQTTThrottleTopic(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Faults = &Faults{Throttle: func(string) (time.Duration, bool) { return 5 * time.Second, true }}
	})
	e.mustPut(symmetricEnrollment("dev1", key1))
	out := &fakeOutbound{}
	sess, err := e.svc.Personality().Connect(broker.ConnectInfo{ClientID: "dev1", Username: testScope + "/registrations/dev1/api-version=2019-03-31",
		Password: []byte(deviceToken(e.clk, "dev1", key1))}, out)
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Publish("$dps/registrations/PUT/iotdps-register/?$rid=3", nil, 1); err != nil {
		t.Fatal(err)
	}
	m := out.last(t)
	if m.topic != "$dps/registrations/res/429/?$rid=3&retry-after=5" {
		t.Errorf("topic %q", m.topic)
	}
	var ed ErrorDetails
	if err := json.Unmarshal(m.payload, &ed); err != nil || ed.ErrorCode != 429001 {
		t.Errorf("payload %s", m.payload)
	}
}

func TestResponseTopic(t *testing.T) {
	tests := []struct {
		status, ra int
		rid        string
		want       string
	}{
		{202, 3, "1", "$dps/registrations/res/202/?$rid=1&retry-after=3"},
		{200, 0, "65535", "$dps/registrations/res/200/?$rid=65535"},
		{401, 0, "a b&c", "$dps/registrations/res/401/?$rid=a+b%26c"},
	}
	for _, tc := range tests {
		if got := responseTopic(tc.status, tc.rid, tc.ra); got != tc.want {
			t.Errorf("responseTopic = %q, want %q", got, tc.want)
		}
	}
}
