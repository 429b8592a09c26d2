package topic

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadTopic is returned (wrapped) by every parser for a topic that does not
// have the expected shape.
var ErrBadTopic = errors.New("topic: unexpected topic")

// ErrBadID is returned (wrapped) by ValidateID.
var ErrBadID = errors.New("topic: invalid device or module id")

// ValidateID checks a device or module id before it is put into topics and
// usernames. IoT Hub allows up to 128 characters: ASCII letters and digits
// and - : . + % _ # * ? ! ( ) , = @ ; $ ' (documented for deviceId and
// moduleId, e.g. in the IotHubDeviceCreatedEventData reference of
// @azure/eventgrid). '+' and '#' are refused here although the hub allows
// them: they are MQTT wildcards and may not appear in a PUBLISH topic
// (MQTT 3.1.1 §4.7.1), so such a device cannot use MQTT at all.
func ValidateID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("%w: length %d not in 1..128", ErrBadID, len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-:.%_*?!(),=@;$'", c) >= 0:
		case c == '+' || c == '#':
			return fmt.Errorf("%w: %q contains MQTT wildcard %q", ErrBadID, id, c)
		default:
			return fmt.Errorf("%w: %q contains %q", ErrBadID, id, c)
		}
	}
	return nil
}

// ClientID is the MQTT client id: the device id, or "<device>/<module>"
// (Node device/transport/mqtt/src/mqtt.ts).
func ClientID(deviceID, moduleID string) string {
	if moduleID == "" {
		return deviceID
	}
	return deviceID + "/" + moduleID
}

// HubUser describes the hub CONNECT username.
type HubUser struct {
	Host       string // hub host name, e.g. "myhub.azure-devices.net"
	DeviceID   string
	ModuleID   string // optional
	APIVersion string // default HubAPIVersion
	ClientType string // product info, e.g. "porthole/1.0"; escaped
	ModelID    string // optional IoT Plug and Play model id; escaped
}

// Username renders
// `<host>/<clientId>/?api-version=<v>&DeviceClientType=<esc>[&model-id=<esc>]`,
// the C SDK's order (C iothubtransport_mqtt_common.c
// buildConfigForUsernameStep2IfNeeded; Node puts model-id first, the hub
// accepts both).
func (u HubUser) Username() string {
	v := u.APIVersion
	if v == "" {
		v = HubAPIVersion
	}
	s := u.Host + "/" + ClientID(u.DeviceID, u.ModuleID) + "/?" +
		KeyAPIVersion + "=" + Escape(v) + "&" + KeyClientType + "=" + Escape(u.ClientType)
	if u.ModelID != "" {
		s += "&" + KeyModelID + "=" + Escape(u.ModelID)
	}
	return s
}

// Telemetry returns the device-to-cloud topic
// `devices/<d>/messages/events/<bag>` or, with a module,
// `devices/<d>/modules/<m>/messages/events/<bag>` (C iothubtransport_mqtt_common.c
// TOPIC_DEVICE_EVENTS / TOPIC_MODULE_EVENTS). Ids must pass ValidateID.
func Telemetry(deviceID, moduleID string, p Properties) (string, error) {
	bag, err := p.Encode()
	if err != nil {
		return "", err
	}
	if moduleID == "" {
		return devicesPrefix + deviceID + eventsSuffix + bag, nil
	}
	return devicesPrefix + deviceID + modulesPart + moduleID + eventsSuffix + bag, nil
}

// C2DSubscription is the filter for cloud-to-device messages
// (C iothubtransport_mqtt_common.c TOPIC_DEVICE_MSG).
func C2DSubscription(deviceID string) string {
	return devicesPrefix + deviceID + deviceboundSuffix + "#"
}

// C2DMessage is a parsed cloud-to-device topic.
type C2DMessage struct {
	DeviceID   string
	Properties Properties
}

// C2D builds `devices/<d>/messages/devicebound/<bag>` (what the hub
// publishes; used by tests and fakes).
func C2D(m C2DMessage) (string, error) {
	bag, err := m.Properties.Encode()
	if err != nil {
		return "", err
	}
	return devicesPrefix + m.DeviceID + deviceboundSuffix + bag, nil
}

// ParseC2D parses `devices/<d>/messages/devicebound/<bag>`. Like the C#
// SDK's tokenizer it stops the bag at a '/' (C# PopulateMessagePropertiesFromMqttMessage
// allows a trailing one).
func ParseC2D(topic string) (C2DMessage, error) {
	rest, ok := strings.CutPrefix(topic, devicesPrefix)
	if !ok {
		return C2DMessage{}, fmt.Errorf("%w: %q is not a devicebound topic", ErrBadTopic, topic)
	}
	dev, bag, ok := strings.Cut(rest, deviceboundSuffix)
	if !ok || dev == "" || strings.Contains(dev, "/") {
		return C2DMessage{}, fmt.Errorf("%w: %q is not a devicebound topic", ErrBadTopic, topic)
	}
	bag, _, _ = strings.Cut(bag, "/")
	p, err := DecodeProperties(bag)
	if err != nil {
		return C2DMessage{}, fmt.Errorf("c2d %q: %w", topic, err)
	}
	return C2DMessage{DeviceID: dev, Properties: p}, nil
}

// TwinGet is the topic to request the whole twin (payload empty).
func TwinGet(rid string) string { return twinGetPrefix + rid }

// TwinPatchReported is the topic to patch reported properties (payload =
// JSON patch).
func TwinPatchReported(rid string) string { return twinPatchPrefix + rid }

// TwinResponse is a parsed `$iothub/twin/res/<status>/?$rid=<rid>[&$version=<v>]`.
type TwinResponse struct {
	Status     int
	RID        string
	Version    int64 // new reported version after a PATCH (204)
	HasVersion bool
}

// Topic renders r (what the hub publishes; used by tests and fakes).
func (r TwinResponse) Topic() string {
	s := twinResPrefix + strconv.Itoa(r.Status) + "/?" + KeyRID + "=" + r.RID
	if r.HasVersion {
		s += "&" + KeyVersion + "=" + strconv.FormatInt(r.Version, 10)
	}
	return s
}

// ParseTwinResponse parses a twin response topic. A query part with a
// non-empty $rid is required (C# expects `\$iothub/twin/res/(\d+)/(\?.+)`);
// unknown query keys are ignored.
func ParseTwinResponse(topic string) (TwinResponse, error) {
	status, q, err := statusAndQuery(topic, twinResPrefix)
	if err != nil {
		return TwinResponse{}, err
	}
	r := TwinResponse{Status: status}
	for k, v := range pairs(q) {
		switch k {
		case KeyRID:
			r.RID = v
		case KeyVersion:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return TwinResponse{}, fmt.Errorf("%w: %q: bad $version", ErrBadTopic, topic)
			}
			r.Version, r.HasVersion = n, true
		}
	}
	if r.RID == "" {
		return TwinResponse{}, fmt.Errorf("%w: %q has no $rid", ErrBadTopic, topic)
	}
	return r, nil
}

// TwinDesired renders `$iothub/twin/PATCH/properties/desired/?$version=<v>`
// (what the hub publishes; used by tests and fakes).
func TwinDesired(version int64) string {
	return twinDesiredPrefix + "?" + KeyVersion + "=" + strconv.FormatInt(version, 10)
}

// ParseTwinDesired parses a desired-properties patch topic and returns its
// $version (ok false when absent; the payload also carries "$version").
func ParseTwinDesired(topic string) (version int64, ok bool, err error) {
	rest, found := strings.CutPrefix(topic, twinDesiredPrefix)
	if !found || (rest != "" && rest[0] != '?') {
		return 0, false, fmt.Errorf("%w: %q is not a desired-properties patch", ErrBadTopic, topic)
	}
	for k, v := range pairs(strings.TrimPrefix(rest, "?")) {
		if k == KeyVersion {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, false, fmt.Errorf("%w: %q: bad $version", ErrBadTopic, topic)
			}
			version, ok = n, true
		}
	}
	return version, ok, nil
}

// MethodRequest is a parsed `$iothub/methods/POST/<name>/?$rid=<rid>`.
type MethodRequest struct {
	Name string
	RID  string
}

// Topic renders r (what the hub publishes; used by tests and fakes).
func (r MethodRequest) Topic() string {
	return methodPostPrefix + r.Name + "/?" + KeyRID + "=" + r.RID
}

// ParseMethodRequest parses a direct-method request topic.
func ParseMethodRequest(topic string) (MethodRequest, error) {
	name, q, err := nameAndQuery(topic, methodPostPrefix)
	if err != nil {
		return MethodRequest{}, err
	}
	r := MethodRequest{Name: name}
	for k, v := range pairs(q) {
		if k == KeyRID {
			r.RID = v
		}
	}
	if r.RID == "" {
		return MethodRequest{}, fmt.Errorf("%w: %q has no $rid", ErrBadTopic, topic)
	}
	return r, nil
}

// MethodResponse is the topic for the device's reply (payload = JSON)
// (C iothubtransport_mqtt_common.c DEVICE_METHOD_RESPONSE_TOPIC).
func MethodResponse(rid string, status int) string {
	return methodResPrefix + strconv.Itoa(status) + "/?" + KeyRID + "=" + rid
}

// StreamRequest is a parsed device-stream request,
// `$iothub/streams/POST/<name>/?$rid=<rid>&$url=<pct-encoded>&$auth=<raw>`.
type StreamRequest struct {
	Name string
	RID  string // raw
	URL  string // percent-decoded
	Auth string // raw: used as the WebSocket bearer token exactly as sent
}

// Topic renders r as the hub would (tests and fakes): $url is escaped with
// Escape, $auth and $rid go raw, so they must not contain '&', '/', '#',
// '+' or NUL.
func (r StreamRequest) Topic() (string, error) {
	if r.Name == "" || strings.ContainsAny(r.Name, "/#+\x00") {
		return "", fmt.Errorf("%w: stream name %q", ErrBadTopic, r.Name)
	}
	for _, v := range []string{r.RID, r.Auth} {
		if v == "" || strings.ContainsAny(v, "&/#+\x00") {
			return "", fmt.Errorf("%w: stream $rid/$auth %q cannot go raw into a topic", ErrBadTopic, v)
		}
	}
	return streamPostPrefix + r.Name + "/?" + KeyRID + "=" + r.RID + "&" +
		KeyURL + "=" + Escape(r.URL) + "&" + KeyAuth + "=" + r.Auth, nil
}

// ParseStreamRequest parses a stream request topic following the C preview
// client (C iothubtransport_mqtt_common.c@public-preview-DeviceStreaming):
// the query splits on '&' then on the first '='; only $url is
// percent-decoded; $rid and $auth stay raw; unknown keys (e.g. $ip) are
// ignored. $rid, $url and $auth are all required.
func ParseStreamRequest(topic string) (StreamRequest, error) {
	name, q, err := nameAndQuery(topic, streamPostPrefix)
	if err != nil {
		return StreamRequest{}, err
	}
	r := StreamRequest{Name: name}
	var hasURL bool
	for k, v := range pairs(q) {
		switch k {
		case KeyRID:
			r.RID = v
		case KeyAuth:
			r.Auth = v
		case KeyURL:
			u, err := Unescape(v)
			if err != nil {
				return StreamRequest{}, fmt.Errorf("stream request %q: $url: %w", topic, err)
			}
			r.URL, hasURL = u, true
		}
	}
	switch {
	case r.RID == "":
		return StreamRequest{}, fmt.Errorf("%w: stream request %q has no $rid", ErrBadTopic, topic)
	case !hasURL || r.URL == "":
		return StreamRequest{}, fmt.Errorf("%w: stream request %q has no $url", ErrBadTopic, topic)
	case r.Auth == "":
		return StreamRequest{}, fmt.Errorf("%w: stream request %q has no $auth", ErrBadTopic, topic)
	}
	return r, nil
}

// StreamResponse is the device's accept (StreamAccept) or reject
// (StreamReject) reply, published with an empty payload at QoS 0.
func StreamResponse(rid string, status int) string {
	return streamResPrefix + strconv.Itoa(status) + "/?" + KeyRID + "=" + rid
}

// nameAndQuery splits `<prefix><name>/?<query>`; name is non-empty and has
// no '/'.
func nameAndQuery(topic, prefix string) (name, query string, err error) {
	rest, ok := strings.CutPrefix(topic, prefix)
	if !ok {
		return "", "", fmt.Errorf("%w: %q does not start with %q", ErrBadTopic, topic, prefix)
	}
	name, query, ok = strings.Cut(rest, "/?")
	if !ok || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("%w: %q: want %s<name>/?<query>", ErrBadTopic, topic, prefix)
	}
	return name, query, nil
}

// statusAndQuery splits `<prefix><status>/?<query>`; status is a 3-digit
// number.
func statusAndQuery(topic, prefix string) (status int, query string, err error) {
	s, q, err := nameAndQuery(topic, prefix)
	if err != nil {
		return 0, "", err
	}
	if len(s) != 3 || !allDigits(s) || s[0] == '0' {
		return 0, "", fmt.Errorf("%w: %q: bad status %q", ErrBadTopic, topic, s)
	}
	n, _ := strconv.Atoi(s)
	return n, q, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// pairs iterates over `k=v&k=v`, splitting each pair on its first '='.
// Values are raw. Empty pairs are skipped.
func pairs(q string) func(yield func(k, v string) bool) {
	return func(yield func(k, v string) bool) {
		for pair := range strings.SplitSeq(q, "&") {
			if pair == "" {
				continue
			}
			k, v, _ := strings.Cut(pair, "=")
			if !yield(k, v) {
				return
			}
		}
	}
}
