package config

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/porthole-iot/porthole/sdk/auth"
)

// ErrDeriveKey is returned by DeriveDeviceKey for a malformed group key
// (or an empty registration ID).
var ErrDeriveKey = errors.New("config: cannot derive the device key")

const redactedText = "[redacted]"

// Secret holds a value that must never be printed or logged. Every way of
// formatting it (fmt verbs, slog, JSON, YAML) yields "[redacted]"; call
// Reveal to get the value.
type Secret struct{ v string }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{v: s} }

// Reveal returns the secret value.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

func (s Secret) String() string {
	if s.v == "" {
		return ""
	}
	return redactedText
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return "config.Secret{" + redactedText + "}" }

// LogValue keeps slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps encoders (JSON, YAML) from printing the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// DeriveDeviceKey computes a device's symmetric key from its enrollment
// group's key with sdk/auth.DeriveGroupKey (base64(HMAC-SHA256(key =
// base64decode(groupKey), msg = registrationID))).
// Source: [doc: How to provision devices using symmetric key enrollment groups]
// (MicrosoftDocs/azure-docs articles/iot-dps/how-to-legacy-device-symm-key.md).
func DeriveDeviceKey(groupKey Secret, registrationID string) (Secret, error) {
	k, err := auth.DeriveGroupKey(groupKey.Reveal(), registrationID)
	if err != nil {
		// auth's errors never echo the key.
		return Secret{}, fmt.Errorf("%w: %w", ErrDeriveKey, err)
	}
	return NewSecret(k), nil
}
