package topic

import (
	"fmt"
	"strconv"
	"strings"
)

// DPSUser describes the DPS CONNECT username.
type DPSUser struct {
	IDScope        string
	RegistrationID string
	APIVersion     string // default DPSAPIVersion
	ClientVersion  string // product info, escaped
}

// Username renders
// `<scope>/registrations/<regId>/api-version=<v>&ClientVersion=<esc>` — note
// "/api-version=" with no '?' (C provisioning_client/src/prov_transport_mqtt_common.c
// MQTT_USERNAME_FMT; Node provisioning/transport/mqtt/src/mqtt.ts escapes
// the client version with encodeURIComponent).
func (u DPSUser) Username() string {
	v := u.APIVersion
	if v == "" {
		v = DPSAPIVersion
	}
	return u.IDScope + "/registrations/" + u.RegistrationID + "/" +
		KeyAPIVersion + "=" + Escape(v) + "&" + KeyClientVer + "=" + Escape(u.ClientVersion)
}

// DPSRegister is the topic for a registration request,
// `$dps/registrations/PUT/iotdps-register/?$rid=<rid>`.
func DPSRegister(rid string) string { return dpsRegisterPrefix + rid }

// DPSPoll is the topic for an operation-status poll,
// `$dps/registrations/GET/iotdps-get-operationstatus/?$rid=<rid>&operationId=<op>`.
// The operation id is escaped (a no-op for the ids DPS hands out).
func DPSPoll(rid, operationID string) string {
	return dpsStatusPrefix + rid + "&" + KeyOperationID + "=" + Escape(operationID)
}

// DPSResponse is a parsed `$dps/registrations/res/<status>/?$rid=<rid>[&retry-after=<s>]`.
type DPSResponse struct {
	Status int
	RID    string
	// RetryAfter is the raw retry-after value (integer seconds from DPS);
	// parse it with retry.ParseRetryAfter. Empty when absent.
	RetryAfter string
}

// Topic renders r with $rid first, as C# requires (C#
// provisioning/transport/mqtt/src/ProvisioningChannelHandlerAdapter.cs
// matches `^\$dps/registrations/res/(.*?)/\?\$rid=(.*?)$`) and a lower-case
// `retry-after`, the only spelling Node reads. Used by tests and fakes.
func (r DPSResponse) Topic() string {
	s := dpsResPrefix + strconv.Itoa(r.Status) + "/?" + KeyRID + "=" + r.RID
	if r.RetryAfter != "" {
		s += "&" + KeyRetryAfter + "=" + r.RetryAfter
	}
	return s
}

// ParseDPSResponse parses a DPS response topic. Query keys may come in any
// order; `retry-after` is matched case-insensitively (C# does; Node and C
// use the lower-case form). A non-empty $rid is required.
func ParseDPSResponse(topic string) (DPSResponse, error) {
	status, q, err := statusAndQuery(topic, dpsResPrefix)
	if err != nil {
		return DPSResponse{}, err
	}
	r := DPSResponse{Status: status}
	for k, v := range pairs(q) {
		switch {
		case k == KeyRID:
			r.RID = v
		case strings.EqualFold(k, KeyRetryAfter):
			r.RetryAfter = v
		}
	}
	if r.RID == "" {
		return DPSResponse{}, fmt.Errorf("%w: %q has no $rid", ErrBadTopic, topic)
	}
	return r, nil
}
