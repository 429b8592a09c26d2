package dps

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/porthole-iot/porthole/hubsim/internal/broker"
)

// Personality returns the broker personality that serves DPS over MQTT
// (MQTT/TLS and MQTT/WebSocket). [Azure/azure-iot-sdk-c
// provisioning_client/src/prov_transport_mqtt_common.c], [Azure/azure-iot-sdk-node
// provisioning/transport/mqtt/src/mqtt.ts], [Azure/azure-iot-sdk-csharp
// provisioning/transport/mqtt/src/ProvisioningChannelHandlerAdapter.cs]
func (s *Service) Personality() broker.Personality { return mqttPersonality{s} }

type mqttPersonality struct{ s *Service }

// parseUsername splits "<idScope>/registrations/<regId>/api-version=<v>[&…]".
func parseUsername(u string) (scope, regID, apiVersion string, ok bool) {
	head, tail, found := strings.Cut(u, mqttUsernameAPIVersion)
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(head, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] != "registrations" || parts[2] == "" {
		return "", "", "", false
	}
	apiVersion, _, _ = strings.Cut(tail, "&")
	return parts[0], parts[2], apiVersion, true
}

// Claims reports whether username is a DPS CONNECT username.
func (p mqttPersonality) Claims(username string) bool {
	_, _, _, ok := parseUsername(username)
	return ok
}

// Connect authenticates a device by its SAS password or TLS client certificate.
func (p mqttPersonality) Connect(info broker.ConnectInfo, out broker.Outbound) (broker.Session, error) {
	s := p.s
	scope, regID, apiVersion, ok := parseUsername(info.Username)
	if !ok || !s.knownScope(scope) {
		return nil, fmt.Errorf("dps: unknown ID scope in username: %w", broker.ErrBadCredentials)
	}
	if info.ClientID != regID {
		return nil, fmt.Errorf("dps: client id %q is not the registration id: %w", info.ClientID, broker.ErrBadCredentials)
	}
	if s.isClosed() {
		return nil, broker.ErrServerUnavailable
	}
	creds := deviceCreds{SAS: string(info.Password)}
	if creds.SAS == "" && info.TLS != nil {
		creds.Certs = info.TLS.PeerCertificates
	}
	if _, err := s.authenticate(scope, regID, creds, s.now()); err != nil {
		s.log.Info("dps: mqtt connect refused", "device", regID)
		return nil, fmt.Errorf("dps: %w", broker.ErrNotAuthorized)
	}
	return &mqttSession{s: s, out: out, scope: scope, regID: regID, apiVersion: apiVersion, creds: creds, remote: info.Remote, transport: info.Transport}, nil
}

// mqttSession is one connected device. The broker calls it from the
// client's read goroutine, one call at a time.
type mqttSession struct {
	s          *Service
	out        broker.Outbound
	scope      string
	regID      string
	apiVersion string
	creds      deviceCreds
	remote     string
	transport  string
}

func (m *mqttSession) Subscribe(filter string, qos byte) (byte, bool) {
	if filter != topicResFilter && !strings.HasPrefix(filter, topicResPrefix) {
		m.s.recordUnhandled("SUBSCRIBE " + filter)
		return 0, false
	}
	return min(qos, 1), true
}

func (m *mqttSession) Unsubscribe(string) {}

func (m *mqttSession) Disconnected(error) {}

// parseRequestTopic reads a register or poll topic.
func parseRequestTopic(topic string) (kind opKind, rid, operationID string, err error) {
	var query string
	switch {
	case strings.HasPrefix(topic, topicRegisterPrefix):
		kind, query = kindRegister, strings.TrimPrefix(topic, topicRegisterPrefix)
	case strings.HasPrefix(topic, topicPollPrefix):
		kind, query = kindPoll, strings.TrimPrefix(topic, topicPollPrefix)
	default:
		return 0, "", "", errors.New("not a DPS request topic")
	}
	query, ok := strings.CutPrefix(query, "?")
	if !ok {
		return 0, "", "", errors.New("request topic without properties")
	}
	vals, err := url.ParseQuery(query)
	if err != nil {
		return 0, "", "", fmt.Errorf("request topic properties: %w", err)
	}
	rid = vals.Get("$rid")
	if rid == "" {
		return 0, "", "", errors.New("request topic without $rid")
	}
	if kind == kindPoll {
		operationID = vals.Get("operationId")
		if operationID == "" {
			return 0, "", "", errors.New("poll topic without operationId")
		}
	}
	return kind, rid, operationID, nil
}

// responseTopic builds "$dps/registrations/res/<status>/?$rid=<rid>[&retry-after=<s>]",
// $rid first (the C# client's regex requires it).
func responseTopic(status int, rid string, retryAfter int) string {
	t := topicResPrefix + strconv.Itoa(status) + "/?$rid=" + url.QueryEscape(rid)
	if retryAfter > 0 {
		t += "&" + mqttRetryAfterKey + "=" + strconv.Itoa(retryAfter)
	}
	return t
}

func (m *mqttSession) Publish(topic string, payload []byte, qos byte) error {
	kind, rid, opID, err := parseRequestTopic(topic)
	if err != nil {
		m.s.recordUnhandled("PUBLISH " + topic)
		return fmt.Errorf("dps: %v: %w", err, broker.ErrNotAuthorized)
	}
	rp := m.s.handleDevice(m.s.ctx, deviceRequest{
		kind: kind, scope: m.scope, regID: m.regID, apiVersion: m.apiVersion, operationID: opID,
		creds: m.creds, body: payload, remote: m.remote, transport: m.transport,
	})
	body, err := json.Marshal(rp.body)
	if err != nil {
		rp = errReply(http.StatusInternalServerError, codeInternal, "internal error", m.s.now())
		body, _ = json.Marshal(rp.body)
	}
	if err := m.out.Publish(responseTopic(rp.status, rid, rp.retryAfter), body, 1); err != nil {
		m.s.log.Info("dps: could not answer device", "device", m.regID, "rid", rid, "err", err)
	}
	return nil
}
