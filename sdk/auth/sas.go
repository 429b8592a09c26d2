package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors. Errors returned by this package wrap one of them and say
// which input was wrong; they never contain a key or a signature.
var (
	// ErrInvalidKey: a shared access key is empty or not standard base64.
	ErrInvalidKey = errors.New("auth: invalid shared access key")
	// ErrInvalidArgument: an empty host, device, scope or registration, or an
	// expiry before the Unix epoch.
	ErrInvalidArgument = errors.New("auth: invalid argument")
	// ErrMalformedToken: ParseToken could not read the token.
	ErrMalformedToken = errors.New("auth: malformed SAS token")
	// ErrMalformedConnectionString: a connection string could not be read.
	ErrMalformedConnectionString = errors.New("auth: malformed connection string")
	// ErrMissingKey: a connection string lacks a required key.
	ErrMissingKey = errors.New("auth: connection string is missing a key")
	// ErrX509: a certificate or private key file could not be loaded.
	ErrX509 = errors.New("auth: X.509 key pair")
)

// decodeKey decodes a base64 shared access key as the SDKs do
// (Convert.FromBase64String / Buffer.from(key, 'base64')).
func decodeKey(keyB64 string) ([]byte, error) {
	if keyB64 == "" {
		return nil, fmt.Errorf("%w: key is empty", ErrInvalidKey)
	}
	k, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil {
		// Don't echo the key; only say where it broke.
		return nil, fmt.Errorf("%w: not standard base64 (%d characters)", ErrInvalidKey, len(keyB64))
	}
	if len(k) == 0 {
		return nil, fmt.Errorf("%w: key decodes to zero bytes", ErrInvalidKey)
	}
	return k, nil
}

// ValidateKey reports whether keyB64 is usable as a shared access key.
func ValidateKey(keyB64 string) error {
	_, err := decodeKey(keyB64)
	return err
}

// hmacB64 returns base64(HMAC-SHA256(key, msg)).
func hmacB64(key []byte, msg string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Sign returns base64(HMAC-SHA256(base64decode(keyB64), stringToSign)), the
// SAS signature before URL encoding.
// [Azure/azure-iot-sdk-node common/core/src/authorization.ts hmacHash]
func Sign(keyB64, stringToSign string) (string, error) {
	k, err := decodeKey(keyB64)
	if err != nil {
		return "", err
	}
	return hmacB64(k, stringToSign), nil
}

// StringToSign is "<sr as it appears in the token>\n<se>".
// [Azure/azure-iot-sdk-node common/core/src/authorization.ts stringToSign]
func StringToSign(sr string, expiry int64) string {
	return sr + "\n" + strconv.FormatInt(expiry, 10)
}

// EncodeComponent percent-encodes s for a token's sr or skn: every byte
// outside the RFC 3986 unreserved set [A-Za-z0-9-._~] becomes %XX with
// upper-case hex. That is what the Node SDK produces (encodeURIComponent
// with !'()* also escaped, [Azure/azure-iot-sdk-node
// common/core/src/authorization.ts encodeUriComponentStrict]) and, for the
// characters device ids and hosts use, what C# WebUtility.UrlEncode produces.
func EncodeComponent(s string) string {
	const hex = "0123456789ABCDEF"
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// DeviceResource is the decoded resource a device or module token covers:
// "<host>/devices/<deviceID>" or "<host>/devices/<deviceID>/modules/<moduleID>".
func DeviceResource(host, deviceID, moduleID string) string {
	r := host + devicesSegment + deviceID
	if moduleID != "" {
		r += modulesSegment + moduleID
	}
	return r
}

// DPSResource is the decoded resource a DPS registration token covers:
// "<idScope>/registrations/<registrationID>".
func DPSResource(idScope, registrationID string) string {
	return idScope + registrationsSegment + registrationID
}

// BuildToken signs sr (used verbatim: pass it already encoded, e.g. through
// EncodeComponent) until expiry and returns the token in the field order
// sr, sig, se[, skn]. keyName is percent-encoded; "" omits skn.
func BuildToken(sr, keyName, keyB64 string, expiry time.Time) (string, error) {
	k, err := decodeKey(keyB64)
	if err != nil {
		return "", err
	}
	return buildToken(sr, keyName, k, expiry)
}

func buildToken(sr, keyName string, key []byte, expiry time.Time) (string, error) {
	if sr == "" {
		return "", fmt.Errorf("%w: empty sr", ErrInvalidArgument)
	}
	se := expiry.Unix()
	if se <= 0 {
		return "", fmt.Errorf("%w: expiry %s is not after the Unix epoch", ErrInvalidArgument, expiry.UTC().Format(time.RFC3339))
	}
	sig := hmacB64(key, StringToSign(sr, se))
	var b strings.Builder
	b.Grow(len(tokenPrefix) + len(sr) + len(sig) + len(keyName) + 48)
	b.WriteString(tokenPrefix)
	b.WriteString(fieldSR + "=")
	b.WriteString(sr)
	b.WriteString("&" + fieldSig + "=")
	b.WriteString(EncodeComponent(sig))
	b.WriteString("&" + fieldSE + "=")
	b.WriteString(strconv.FormatInt(se, 10))
	if keyName != "" {
		b.WriteString("&" + fieldSKN + "=")
		b.WriteString(EncodeComponent(keyName))
	}
	return b.String(), nil
}

func checkParts(what ...string) error {
	for i := 0; i+1 < len(what); i += 2 {
		if what[i+1] == "" {
			return fmt.Errorf("%w: empty %s", ErrInvalidArgument, what[i])
		}
	}
	return nil
}

// DeviceToken returns a hub token for a device (moduleID "") or a module:
// sr=urlenc(<host>/devices/<id>[/modules/<m>]), no skn.
// [Azure/azure-iot-sdk-node device/core/src/sak_authentication_provider.ts]
func DeviceToken(host, deviceID, moduleID, keyB64 string, expiry time.Time) (string, error) {
	if err := checkParts("host", host, "device id", deviceID); err != nil {
		return "", err
	}
	return BuildToken(EncodeComponent(DeviceResource(host, deviceID, moduleID)), "", keyB64, expiry)
}

// DPSToken returns a DPS registration token:
// sr=urlenc(<idScope>/registrations/<registrationID>), skn=registration.
// The sr is encoded as the C# client does (upper-case hex); the C client
// writes lower-case hex, which DPS accepts equally because the signature
// covers sr as sent.
// [Azure/azure-iot-sdk-csharp ProvisioningSasBuilder.cs], [Azure/azure-iot-sdk-c
// provisioning_client/src/prov_device_ll_client.c]
func DPSToken(idScope, registrationID, keyB64 string, expiry time.Time) (string, error) {
	if err := checkParts("ID scope", idScope, "registration id", registrationID); err != nil {
		return "", err
	}
	return BuildToken(EncodeComponent(DPSResource(idScope, registrationID)), DPSKeyName, keyB64, expiry)
}

// PolicyToken returns a shared-access-policy token: sr=urlenc(<host>),
// skn=<policy>, as service clients send it (e.g. skn=iothubowner,
// provisioningserviceowner).
func PolicyToken(host, policyName, keyB64 string, expiry time.Time) (string, error) {
	if err := checkParts("host", host, "policy name", policyName); err != nil {
		return "", err
	}
	return BuildToken(EncodeComponent(host), policyName, keyB64, expiry)
}

// DeriveGroupKey derives a device's symmetric key from an enrollment group
// key: base64(HMAC-SHA256(base64decode(groupKey), utf8(registrationID))).
// [doc: How to provision devices using symmetric key enrollment groups,
// MicrosoftDocs/azure-docs articles/iot-dps/how-to-legacy-device-symm-key.md]
func DeriveGroupKey(groupKeyB64, registrationID string) (string, error) {
	if registrationID == "" {
		return "", fmt.Errorf("%w: empty registration id", ErrInvalidArgument)
	}
	return Sign(groupKeyB64, registrationID)
}

// Redact replaces the value of a token's sig field with "…" so the token can
// be logged. Other fields are kept; a string that is not a token is returned
// with every sig= value redacted all the same.
func Redact(token string) string {
	var b strings.Builder
	rest := token
	for {
		i := strings.Index(rest, fieldSig+"=")
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		// Only a field start: preceded by '&', ' ' or the string start.
		if i > 0 && rest[i-1] != '&' && rest[i-1] != ' ' {
			b.WriteString(rest[:i+len(fieldSig)+1])
			rest = rest[i+len(fieldSig)+1:]
			continue
		}
		b.WriteString(rest[:i+len(fieldSig)+1])
		b.WriteString("…")
		rest = rest[i+len(fieldSig)+1:]
		if j := strings.IndexAny(rest, "&;"); j >= 0 {
			rest = rest[j:]
		} else {
			rest = ""
		}
	}
}
