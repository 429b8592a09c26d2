package sas

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors; every error from this package wraps exactly one.
var (
	ErrMalformed     = errors.New("sas: malformed token")
	ErrBadSignature  = errors.New("sas: signature does not verify")
	ErrExpired       = errors.New("sas: token expired")
	ErrWrongResource = errors.New("sas: token does not cover the resource")
	ErrPermission    = errors.New("sas: permission denied")
)

// Token is a parsed SAS token.
type Token struct {
	SR       string    // sr exactly as sent (raw, maybe percent-encoded)
	Resource string    // sr URL-decoded
	Sig      string    // signature, URL-decoded (base64 text)
	Expiry   time.Time // from se
	KeyName  string    // skn, "" when absent
	SE       string    // se exactly as sent
}

// Parse reads "SharedAccessSignature sr=…&sig=…&se=…[&skn=…]" with the
// fields in any order. A field given twice, a field it does not know, an
// empty value, a bad percent-encoding, a sig that is not base64 or an se
// that is not decimal seconds is ErrMalformed.
func Parse(token string) (Token, error) {
	var t Token
	if !strings.HasPrefix(token, scheme) {
		return t, fmt.Errorf("%w: want prefix %q", ErrMalformed, scheme)
	}
	rest := token[len(scheme):]
	if rest == "" {
		return t, fmt.Errorf("%w: no fields after the prefix", ErrMalformed)
	}
	if strings.ContainsAny(rest, " \t\r\n") {
		return t, fmt.Errorf("%w: whitespace inside the fields", ErrMalformed)
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(rest, "&") {
		eq := strings.IndexByte(part, '=')
		if eq <= 0 {
			return t, fmt.Errorf("%w: field %d is not key=value", ErrMalformed, len(seen)+1)
		}
		k, v := part[:eq], part[eq+1:]
		if seen[k] {
			return t, fmt.Errorf("%w: duplicate field %q", ErrMalformed, k)
		}
		seen[k] = true
		if v == "" {
			return t, fmt.Errorf("%w: field %q is empty", ErrMalformed, k)
		}
		switch k {
		case keySR:
			// Microsoft's C client puts the hub sr in raw (PROTOCOL.md
			// §15), so a '%' from a device id need not start a valid
			// escape: such an sr is its own resource. Covers also tries
			// the raw form.
			dec, err := unescape(v)
			if err != nil {
				dec = v
			}
			t.SR, t.Resource = v, dec
		case keySig:
			dec, err := unescape(v)
			if err != nil {
				return t, fmt.Errorf("%w: sig is not valid percent-encoding", ErrMalformed)
			}
			if _, err := decodeSig(dec); err != nil {
				return t, fmt.Errorf("%w: sig is not base64", ErrMalformed)
			}
			t.Sig = dec
		case keySE:
			if len(v) > 19 || strings.TrimLeft(v, "0123456789") != "" {
				return t, fmt.Errorf("%w: se %.24q is not decimal Unix seconds", ErrMalformed, v)
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return t, fmt.Errorf("%w: se %.24q is out of range", ErrMalformed, v)
			}
			t.SE, t.Expiry = v, time.Unix(n, 0).UTC()
		case keySKN:
			dec, err := unescape(v)
			if err != nil {
				return t, fmt.Errorf("%w: skn: %v", ErrMalformed, err)
			}
			t.KeyName = dec
		default:
			return t, fmt.Errorf("%w: unknown field %.24q", ErrMalformed, k)
		}
	}
	for _, k := range []string{keySR, keySig, keySE} {
		if !seen[k] {
			return t, fmt.Errorf("%w: missing field %q", ErrMalformed, k)
		}
	}
	return t, nil
}

// unescape percent-decodes without turning '+' into a space: '+' is a
// literal in sr and in base64 signatures.
func unescape(s string) (string, error) {
	d, err := url.PathUnescape(s)
	if err != nil {
		return "", errors.New("bad percent-encoding")
	}
	return d, nil
}

// decodeSig reads a base64 signature, padded or not.
func decodeSig(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// escapeResource percent-encodes every byte outside [A-Za-z0-9-._~] with
// upper-case hex: the form the Node and C# clients put in sr.
func escapeResource(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// signedForms lists the strings a client may have signed for this token:
// sr as sent (what every SDK signs), then, leniently, the decoded resource
// and its canonical re-encoding (PROTOCOL.md §1).
func (t Token) signedForms() []string {
	forms := []string{t.SR}
	for _, f := range []string{t.Resource, escapeResource(t.Resource)} {
		dup := false
		for _, g := range forms {
			dup = dup || g == f
		}
		if !dup {
			forms = append(forms, f)
		}
	}
	return forms
}

// checkSignature verifies the HMAC only.
func (t Token) checkSignature(keyB64 string) error {
	key, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil || len(key) == 0 {
		return fmt.Errorf("%w: the key to verify with is not base64", ErrBadSignature)
	}
	got, err := decodeSig(t.Sig)
	if err != nil {
		return fmt.Errorf("%w: sig is not base64", ErrBadSignature)
	}
	for _, sr := range t.signedForms() {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(sr + "\n" + t.SE))
		if hmac.Equal(m.Sum(nil), got) {
			return nil
		}
	}
	return fmt.Errorf("%w: sig is not an HMAC of sr %q and se %s under this key", ErrBadSignature, t.SR, t.SE)
}

func (t Token) checkExpiry(now time.Time) error {
	if !now.Before(t.Expiry) {
		return fmt.Errorf("%w: se %s (%s) is not after now (%s)", ErrExpired, t.SE,
			t.Expiry.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// Verify checks the signature with keyB64 over the raw sr + "\n" + se (and,
// leniently, over the decoded sr and its re-encoding), then that the token
// has not expired at now. Errors wrap ErrBadSignature or ErrExpired.
func (t Token) Verify(keyB64 string, now time.Time) error {
	if err := t.checkSignature(keyB64); err != nil {
		return err
	}
	return t.checkExpiry(now)
}

// Covers reports whether the token's decoded sr grants resource: equal, or
// a prefix of it ending at a '/' boundary (a hub-level token covers every
// device). The host part is compared case-insensitively, the path exactly;
// trailing slashes on either side are ignored.
//
// Both readings of sr are tried: percent-decoded (Node and C# encode it) and
// as sent (the C client sends the hub sr raw, so a device id containing '%'
// arrives unencoded). Either is safe: the signature is computed over sr as
// sent, and the caller verifies it with the key of the identity it is
// authenticating, so a token can never open an identity whose key did not
// sign it.
func (t Token) Covers(resource string) bool {
	if covers(t.Resource, resource) {
		return true
	}
	return t.SR != t.Resource && covers(t.SR, resource)
}

func covers(sr, resource string) bool {
	have := strings.TrimRight(sr, "/")
	want := strings.TrimRight(resource, "/")
	if have == "" || want == "" {
		return false
	}
	hHost, hPath, _ := strings.Cut(have, "/")
	wHost, wPath, _ := strings.Cut(want, "/")
	if hHost == "" || !strings.EqualFold(hHost, wHost) {
		return false
	}
	if hPath == "" {
		return true
	}
	return wPath == hPath || strings.HasPrefix(wPath, hPath+"/")
}

// VerifyDevice authenticates a device, module or DPS registration token:
// parse, check it covers resource, then verify with the primary or the
// secondary key (an empty key is skipped) and check expiry.
func VerifyDevice(token, resource string, primaryKeyB64, secondaryKeyB64 string, now time.Time) (Token, error) {
	t, err := Parse(token)
	if err != nil {
		return t, err
	}
	if !t.Covers(resource) {
		return t, fmt.Errorf("%w: sr %q does not cover %q", ErrWrongResource, t.Resource, resource)
	}
	if err := t.verifyEither(primaryKeyB64, secondaryKeyB64, now); err != nil {
		return t, err
	}
	return t, nil
}

// verifyEither checks the signature with either key, then expiry.
func (t Token) verifyEither(primary, secondary string, now time.Time) error {
	var sigErr error
	ok := false
	for _, k := range []string{primary, secondary} {
		if k == "" {
			continue
		}
		if sigErr = t.checkSignature(k); sigErr == nil {
			ok = true
			break
		}
	}
	if !ok {
		if sigErr == nil {
			return fmt.Errorf("%w: no key to verify with", ErrBadSignature)
		}
		return fmt.Errorf("%w (tried primary and secondary keys)", sigErr)
	}
	return t.checkExpiry(now)
}

// DeriveDeviceKey computes the key of a device in a symmetric-key enrollment
// group: base64(HMAC-SHA256(base64decode(groupKey), registrationID)).
// [doc: How to provision devices using symmetric key enrollment groups,
// MicrosoftDocs/azure-docs articles/iot-dps/how-to-legacy-device-symm-key.md]
func DeriveDeviceKey(groupKeyB64, registrationID string) (string, error) {
	key, err := base64.StdEncoding.DecodeString(groupKeyB64)
	if err != nil || len(key) == 0 {
		return "", errors.New("sas: enrollment group key is not base64")
	}
	if registrationID == "" {
		return "", errors.New("sas: empty registration id")
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(registrationID))
	return base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}
