package topic

import (
	"errors"
	"fmt"
	"strings"
)

// Escape percent-encodes s for a property bag or a username query value.
//
// Only A–Z a–z 0–9 '-' '.' '_' are left as they are; every other byte
// becomes %XX (upper-case hex, UTF-8 bytes). That set is the intersection of
// what the SDKs leave unescaped, so every SDK-side and service-side decoder
// reads it back: the C SDK's URL_Encode keeps alphanumerics and "!()*-._"
// and its decoder rejects anything else unescaped (including '~' and '\”)
// (Azure/azure-c-shared-utility src/urlencode.c); Node uses
// encodeURIComponent/querystring, which keeps "-_.!~*'()" (Node
// device/transport/mqtt/src/mqtt.ts); C# uses Uri.EscapeDataString, which
// keeps "-._~" (C# common/src/UrlEncodedDictionarySerializer.cs). So "$.ct"
// becomes "%24.ct", exactly the C SDK's system-property prefix.
func Escape(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
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
		b.WriteByte(hex[c&0xF])
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_'
}

// ErrBadEscape is returned (wrapped) for a malformed %XX sequence.
var ErrBadEscape = errors.New("topic: malformed percent-encoding")

// Unescape decodes %XX sequences (either hex case). '+' stays '+', as in
// Node's decodeURIComponent and C#'s Uri.UnescapeDataString (the C SDK's
// decoder alone turns it into a space). Other bytes pass through unchanged.
func Unescape(s string) (string, error) {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", fmt.Errorf("%w at offset %d in %q", ErrBadEscape, i, s)
		}
		b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
		i += 2
	}
	return b.String(), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}
