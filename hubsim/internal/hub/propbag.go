package hub

import (
	"errors"
	"net/url"
	"sort"
	"strings"
)

var errPropBag = errors.New("malformed property bag")

// parsePropBag decodes an MQTT property bag "k1=v1&k2=v2" whose keys and values
// are percent-encoded (system properties arrive as "%24.ct=…").
// [Azure/azure-iot-sdk-c iothub_client/src/iothubtransport_mqtt_common.c]
// A key without "=" has an empty value. '+' is kept literally: the SDKs
// percent-encode spaces as %20.
func parsePropBag(s string) (map[string]string, error) {
	props := map[string]string{}
	if s == "" {
		return props, nil
	}
	for _, kv := range strings.Split(s, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		dk, err := url.PathUnescape(k)
		if err != nil {
			return nil, errPropBag
		}
		dv, err := url.PathUnescape(v)
		if err != nil {
			return nil, errPropBag
		}
		if dk == "" {
			return nil, errPropBag
		}
		props[dk] = dv
	}
	return props, nil
}

// formatPropBag encodes props with keys sorted, every byte outside the
// unreserved set [A-Za-z0-9-._~] percent-encoded, so a '/', '&' or '=' inside
// a value cannot change the topic's structure.
func formatPropBag(props map[string]string) string {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(pctEncode(k))
		b.WriteByte('=')
		b.WriteString(pctEncode(props[k]))
	}
	return b.String()
}

// pctEncode percent-encodes every byte outside [A-Za-z0-9-._~].
func pctEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// parseTopicQuery parses the "?k=v&…" tail of a $iothub topic. Values are
// returned raw (not percent-decoded), as the SDKs treat $rid.
func parseTopicQuery(q string) (map[string]string, bool) {
	q, ok := strings.CutPrefix(q, "?")
	if !ok {
		return nil, false
	}
	m := map[string]string{}
	for _, kv := range strings.Split(q, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m, true
}
