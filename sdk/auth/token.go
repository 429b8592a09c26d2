package auth

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Token is a parsed SAS token.
type Token struct {
	// SR is sr exactly as it appears in the token (maybe percent-encoded);
	// the signature covers this text.
	SR string
	// Resource is SR percent-decoded ('+' is kept, not turned into a space).
	Resource string
	// Sig is the signature, percent-decoded: standard base64 text.
	Sig string
	// SE is se exactly as it appears in the token (decimal Unix seconds).
	SE string
	// Expiry is SE as a time.
	Expiry time.Time
	// KeyName is skn percent-decoded, "" when the token has none.
	KeyName string
}

// ParseToken reads "SharedAccessSignature sr=…&sig=…&se=…[&skn=…]" with the
// fields in any order. It is strict: exactly one space after the prefix, no
// whitespace or empty field in the rest, no field twice, sr, sig and se
// present, sig valid base64, se a non-negative decimal integer. Fields it
// does not know are ignored.
func ParseToken(s string) (Token, error) {
	var t Token
	body, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return t, fmt.Errorf("%w: does not start with %q", ErrMalformedToken, tokenPrefix)
	}
	if body == "" {
		return t, fmt.Errorf("%w: no fields", ErrMalformedToken)
	}
	if i := strings.IndexAny(body, " \t\r\n"); i >= 0 {
		return t, fmt.Errorf("%w: whitespace at offset %d of the fields", ErrMalformedToken, i)
	}
	var haveSR, haveSig, haveSE, haveSKN bool
	for field := range strings.SplitSeq(body, "&") {
		name, value, ok := strings.Cut(field, "=")
		if !ok || name == "" {
			return t, fmt.Errorf("%w: field %q is not name=value", ErrMalformedToken, fieldLabel(field))
		}
		var dup bool
		switch name {
		case fieldSR:
			dup, haveSR = haveSR, true
			if value == "" {
				return t, fmt.Errorf("%w: empty sr", ErrMalformedToken)
			}
			res, err := url.PathUnescape(value)
			if err != nil {
				return t, fmt.Errorf("%w: sr is not valid percent-encoding", ErrMalformedToken)
			}
			t.SR, t.Resource = value, res
		case fieldSig:
			dup, haveSig = haveSig, true
			sig, err := url.PathUnescape(value)
			if err != nil {
				return t, fmt.Errorf("%w: sig is not valid percent-encoding", ErrMalformedToken)
			}
			if sig == "" {
				return t, fmt.Errorf("%w: empty sig", ErrMalformedToken)
			}
			if _, err := base64.StdEncoding.DecodeString(sig); err != nil {
				return t, fmt.Errorf("%w: sig is not standard base64", ErrMalformedToken)
			}
			t.Sig = sig
		case fieldSE:
			dup, haveSE = haveSE, true
			exp, err := parseSE(value)
			if err != nil {
				return t, err
			}
			t.SE, t.Expiry = value, exp
		case fieldSKN:
			dup, haveSKN = haveSKN, true
			kn, err := url.PathUnescape(value)
			if err != nil {
				return t, fmt.Errorf("%w: skn is not valid percent-encoding", ErrMalformedToken)
			}
			if kn == "" {
				return t, fmt.Errorf("%w: empty skn", ErrMalformedToken)
			}
			t.KeyName = kn
		}
		if dup {
			return t, fmt.Errorf("%w: field %s appears twice", ErrMalformedToken, name)
		}
	}
	switch {
	case !haveSR:
		return t, fmt.Errorf("%w: missing sr", ErrMalformedToken)
	case !haveSig:
		return t, fmt.Errorf("%w: missing sig", ErrMalformedToken)
	case !haveSE:
		return t, fmt.Errorf("%w: missing se", ErrMalformedToken)
	}
	return t, nil
}

// fieldLabel names a bad field without echoing a possible signature.
func fieldLabel(field string) string {
	if len(field) > 16 {
		return field[:16] + "…"
	}
	return field
}

func parseSE(v string) (time.Time, error) {
	if v == "" || len(v) > 19 {
		return time.Time{}, fmt.Errorf("%w: se %q is not Unix seconds", ErrMalformedToken, fieldLabel(v))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return time.Time{}, fmt.Errorf("%w: se %q is not Unix seconds", ErrMalformedToken, fieldLabel(v))
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: se %q is not Unix seconds", ErrMalformedToken, v)
	}
	return time.Unix(n, 0).UTC(), nil
}

// StringToSign is what the token's signature covers: SR + "\n" + SE.
func (t Token) StringToSign() string { return t.SR + "\n" + t.SE }

// Expired reports whether the token is no longer valid at now (now ≥ expiry).
func (t Token) Expired(now time.Time) bool { return !now.Before(t.Expiry) }

// ExpiresWithin reports whether the token expires within d of now (or has
// already expired): the test a client uses to decide to renew.
func (t Token) ExpiresWithin(now time.Time, d time.Duration) bool {
	return !now.Add(d).Before(t.Expiry)
}

// String returns the token with its signature redacted, safe to log.
func (t Token) String() string {
	s := tokenPrefix + fieldSR + "=" + t.SR + "&" + fieldSig + "=…&" + fieldSE + "=" + t.SE
	if t.KeyName != "" {
		s += "&" + fieldSKN + "=" + EncodeComponent(t.KeyName)
	}
	return s
}
