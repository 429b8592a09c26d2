package auth

import (
	"fmt"
	"log/slog"
	"time"
)

// A Signer mints a fresh SAS token valid for ttl from its own clock. Hub and
// DPS clients hold one and call it on every (re)connect and before the
// current token expires, so renewal needs no other state.
type Signer interface {
	Sign(ttl time.Duration) (token string, expiry time.Time, err error)
}

// SignerFunc adapts a function to Signer (e.g. a token read from a file, or
// a hardware-backed signer).
type SignerFunc func(ttl time.Duration) (string, time.Time, error)

// Sign calls f.
func (f SignerFunc) Sign(ttl time.Duration) (string, time.Time, error) { return f(ttl) }

// KeySigner signs one resource with a symmetric key. It is immutable after
// construction and safe for concurrent use. Its String and LogValue never
// show the key.
type KeySigner struct {
	sr      string // sr as written into tokens (percent-encoded)
	keyName string // skn, "" for device tokens
	key     []byte // decoded shared access key
	now     func() time.Time
}

// NewSigner returns a signer for resource (decoded form, e.g.
// "hub.example/devices/dev1"; it is percent-encoded into sr), keyName (""
// for none) and a base64 key. now is the clock; nil means time.Now.
func NewSigner(resource, keyName, keyB64 string, now func() time.Time) (*KeySigner, error) {
	if resource == "" {
		return nil, fmt.Errorf("%w: empty resource", ErrInvalidArgument)
	}
	k, err := decodeKey(keyB64)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &KeySigner{sr: EncodeComponent(resource), keyName: keyName, key: k, now: now}, nil
}

// NewDeviceSigner signs as a hub device (moduleID "") or module; see DeviceToken.
func NewDeviceSigner(host, deviceID, moduleID, keyB64 string, now func() time.Time) (*KeySigner, error) {
	if err := checkParts("host", host, "device id", deviceID); err != nil {
		return nil, err
	}
	return NewSigner(DeviceResource(host, deviceID, moduleID), "", keyB64, now)
}

// NewDPSSigner signs as a DPS registration; see DPSToken.
func NewDPSSigner(idScope, registrationID, keyB64 string, now func() time.Time) (*KeySigner, error) {
	if err := checkParts("ID scope", idScope, "registration id", registrationID); err != nil {
		return nil, err
	}
	return NewSigner(DPSResource(idScope, registrationID), DPSKeyName, keyB64, now)
}

// NewPolicySigner signs as a shared access policy of a hub or DPS host; see PolicyToken.
func NewPolicySigner(host, policyName, keyB64 string, now func() time.Time) (*KeySigner, error) {
	if err := checkParts("host", host, "policy name", policyName); err != nil {
		return nil, err
	}
	return NewSigner(host, policyName, keyB64, now)
}

// Sign returns a token expiring at now+ttl, truncated to whole seconds.
func (s *KeySigner) Sign(ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 {
		return "", time.Time{}, fmt.Errorf("%w: ttl %v is not positive", ErrInvalidArgument, ttl)
	}
	exp := s.now().Add(ttl).Truncate(time.Second)
	tok, err := s.SignUntil(exp)
	if err != nil {
		return "", time.Time{}, err
	}
	return tok, time.Unix(exp.Unix(), 0).UTC(), nil
}

// SignUntil returns a token expiring at expiry (whole seconds).
func (s *KeySigner) SignUntil(expiry time.Time) (string, error) {
	return buildToken(s.sr, s.keyName, s.key, expiry)
}

// SR is the sr the signer writes into its tokens.
func (s *KeySigner) SR() string { return s.sr }

// String describes the signer without its key.
func (s *KeySigner) String() string {
	if s.keyName == "" {
		return "auth.KeySigner{sr=" + s.sr + "}"
	}
	return "auth.KeySigner{sr=" + s.sr + " skn=" + s.keyName + "}"
}

// LogValue keeps the key out of structured logs.
func (s *KeySigner) LogValue() slog.Value {
	return slog.GroupValue(slog.String("sr", s.sr), slog.String("skn", s.keyName))
}

var (
	_ Signer         = (*KeySigner)(nil)
	_ Signer         = SignerFunc(nil)
	_ slog.LogValuer = (*KeySigner)(nil)
	_ fmt.Stringer   = (*KeySigner)(nil)
)
