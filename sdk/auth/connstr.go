package auth

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// DeviceConnectionString is a parsed device or module connection string,
// "HostName=…;DeviceId=…;SharedAccessKey=…[;ModuleId=…][;GatewayHostName=…]",
// or with SharedAccessSignature=… or x509=true instead of the key.
type DeviceConnectionString struct {
	HostName              string
	DeviceID              string
	ModuleID              string
	SharedAccessKey       string // base64
	SharedAccessSignature string // a whole SAS token
	X509                  bool
	GatewayHostName       string
	// Extra keeps keys this package does not know, as written.
	Extra map[string]string
}

// ServiceConnectionString is a parsed shared-access-policy connection
// string, "HostName=…;SharedAccessKeyName=…;SharedAccessKey=…".
type ServiceConnectionString struct {
	HostName            string
	SharedAccessKeyName string
	SharedAccessKey     string // base64
	// Extra keeps keys this package does not know, as written.
	Extra map[string]string
}

// splitConnectionString splits "k=v;k=v" into a map. Keys are
// case-sensitive; a value keeps any '=' after the first (base64 padding);
// empty segments (a trailing ';') are skipped; a key given twice or a key or
// value with surrounding whitespace is an error (the whole string is trimmed).
func splitConnectionString(s string) (map[string]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrMalformedConnectionString)
	}
	m := make(map[string]string)
	for seg := range strings.SplitSeq(s, ";") {
		if seg == "" {
			continue
		}
		k, v, ok := strings.Cut(seg, "=")
		if !ok {
			return nil, fmt.Errorf("%w: segment %q has no '='", ErrMalformedConnectionString, fieldLabel(seg))
		}
		if k == "" {
			return nil, fmt.Errorf("%w: a segment has an empty key", ErrMalformedConnectionString)
		}
		if strings.TrimSpace(k) != k || strings.TrimSpace(v) != v {
			return nil, fmt.Errorf("%w: key or value of %q has surrounding whitespace", ErrMalformedConnectionString, fieldLabel(strings.TrimSpace(k)))
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("%w: key %s appears twice", ErrMalformedConnectionString, k)
		}
		m[k] = v
	}
	return m, nil
}

// take removes and returns m[key]; required keys must be present and non-empty.
func take(m map[string]string, key string, required bool) (string, error) {
	v, ok := m[key]
	delete(m, key)
	if required && (!ok || v == "") {
		for k := range m {
			if strings.EqualFold(k, key) {
				return "", fmt.Errorf("%w: %s (found %q; keys are case-sensitive)", ErrMissingKey, key, k)
			}
		}
		if ok {
			return "", fmt.Errorf("%w: %s is empty", ErrMissingKey, key)
		}
		return "", fmt.Errorf("%w: %s", ErrMissingKey, key)
	}
	return v, nil
}

// ParseDeviceConnectionString parses a device or module connection string.
// HostName and DeviceId are required, and exactly one of SharedAccessKey,
// SharedAccessSignature and x509=true, as the Node SDK requires
// [Azure/azure-iot-sdk-node device/core/src/connection_string.ts].
func ParseDeviceConnectionString(s string) (DeviceConnectionString, error) {
	var c DeviceConnectionString
	m, err := splitConnectionString(s)
	if err != nil {
		return c, err
	}
	if c.HostName, err = take(m, KeyHostName, true); err != nil {
		return c, err
	}
	if c.DeviceID, err = take(m, KeyDeviceID, true); err != nil {
		return c, err
	}
	c.ModuleID, _ = take(m, KeyModuleID, false)
	c.GatewayHostName, _ = take(m, KeyGatewayHostName, false)
	c.SharedAccessKey, _ = take(m, KeySharedAccessKey, false)
	c.SharedAccessSignature, _ = take(m, KeySharedAccessSignature, false)
	x509, hasX509 := m[KeyX509]
	delete(m, KeyX509)
	if hasX509 {
		if !strings.EqualFold(x509, "true") {
			return c, fmt.Errorf("%w: %s=%q, want %s=true", ErrMalformedConnectionString, KeyX509, x509, KeyX509)
		}
		c.X509 = true
	}
	n := 0
	for _, set := range []bool{c.SharedAccessKey != "", c.SharedAccessSignature != "", c.X509} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		if _, err := take(m, KeySharedAccessKey, true); err != nil {
			return c, fmt.Errorf("%w (or %s, or %s=true)", err, KeySharedAccessSignature, KeyX509)
		}
	case n > 1:
		return c, fmt.Errorf("%w: give only one of %s, %s and %s=true", ErrMalformedConnectionString,
			KeySharedAccessKey, KeySharedAccessSignature, KeyX509)
	}
	if c.SharedAccessKey != "" {
		if err := ValidateKey(c.SharedAccessKey); err != nil {
			return c, fmt.Errorf("%s: %w", KeySharedAccessKey, err)
		}
	}
	if c.SharedAccessSignature != "" {
		if _, err := ParseToken(c.SharedAccessSignature); err != nil {
			return c, fmt.Errorf("%s: %w", KeySharedAccessSignature, err)
		}
	}
	if len(m) > 0 {
		c.Extra = m
	}
	return c, nil
}

// ParseServiceConnectionString parses a shared-access-policy connection
// string; all three keys are required.
func ParseServiceConnectionString(s string) (ServiceConnectionString, error) {
	var c ServiceConnectionString
	m, err := splitConnectionString(s)
	if err != nil {
		return c, err
	}
	if c.HostName, err = take(m, KeyHostName, true); err != nil {
		return c, err
	}
	if c.SharedAccessKeyName, err = take(m, KeySharedAccessKeyName, true); err != nil {
		return c, err
	}
	if c.SharedAccessKey, err = take(m, KeySharedAccessKey, true); err != nil {
		return c, err
	}
	if err := ValidateKey(c.SharedAccessKey); err != nil {
		return c, fmt.Errorf("%s: %w", KeySharedAccessKey, err)
	}
	if len(m) > 0 {
		c.Extra = m
	}
	return c, nil
}

type kv struct{ k, v string }

func join(pairs []kv, extra map[string]string) string {
	var b strings.Builder
	for _, p := range pairs {
		if p.v == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(p.k + "=" + p.v)
	}
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(k + "=" + extra[k])
	}
	return b.String()
}

func (c DeviceConnectionString) pairs(secret func(string) string) []kv {
	x := ""
	if c.X509 {
		x = "true"
	}
	return []kv{
		{KeyHostName, c.HostName}, {KeyDeviceID, c.DeviceID}, {KeyModuleID, c.ModuleID},
		{KeySharedAccessKey, secret(c.SharedAccessKey)},
		{KeySharedAccessSignature, secret(c.SharedAccessSignature)},
		{KeyX509, x}, {KeyGatewayHostName, c.GatewayHostName},
	}
}

func keep(s string) string { return s }

func redacted(s string) string {
	if s == "" {
		return ""
	}
	return "…"
}

// Encode returns the connection string with its secret, for storing.
func (c DeviceConnectionString) Encode() string { return join(c.pairs(keep), c.Extra) }

// String returns the connection string with the key or token redacted.
func (c DeviceConnectionString) String() string { return join(c.pairs(redacted), c.Extra) }

// Resource is the decoded resource this identity's tokens cover.
func (c DeviceConnectionString) Resource() string {
	return DeviceResource(c.HostName, c.DeviceID, c.ModuleID)
}

// Signer returns a signer for the device or module key. It fails for
// token or X.509 connection strings, which carry no key.
func (c DeviceConnectionString) Signer(now func() time.Time) (*KeySigner, error) {
	if c.SharedAccessKey == "" {
		return nil, fmt.Errorf("%w: connection string has no %s", ErrMissingKey, KeySharedAccessKey)
	}
	return NewDeviceSigner(c.HostName, c.DeviceID, c.ModuleID, c.SharedAccessKey, now)
}

func (c ServiceConnectionString) pairs(secret func(string) string) []kv {
	return []kv{
		{KeyHostName, c.HostName}, {KeySharedAccessKeyName, c.SharedAccessKeyName},
		{KeySharedAccessKey, secret(c.SharedAccessKey)},
	}
}

// Encode returns the connection string with its key, for storing.
func (c ServiceConnectionString) Encode() string { return join(c.pairs(keep), c.Extra) }

// String returns the connection string with the key redacted.
func (c ServiceConnectionString) String() string { return join(c.pairs(redacted), c.Extra) }

// Signer returns a policy signer for the host.
func (c ServiceConnectionString) Signer(now func() time.Time) (*KeySigner, error) {
	return NewPolicySigner(c.HostName, c.SharedAccessKeyName, c.SharedAccessKey, now)
}
