package logsink

import (
	"context"
	"log/slog"
	"strings"
	"unicode"

	"github.com/porthole-iot/porthole/sdk/auth"
)

// Redacted replaces a value under a secret-looking key.
const Redacted = "[redacted]"

// secretWords are attribute keys (or their last word: deviceKey, sas_token,
// proxy-password) whose values are masked whatever they hold.
var secretWords = []string{
	"key", "token", "password", "passwd", "secret", "sig", "signature",
	"sharedaccesskey", "sharedaccesssignature", "authorization",
}

// Redact wraps h so that records reach it with secrets masked:
//
//   - an attribute whose key is, or ends in the word, key, token,
//     password, passwd, secret, sig, signature, SharedAccessKey,
//     SharedAccessSignature or Authorization (any case; "deviceKey",
//     "sas_token" and "proxy-password" count, "monkey" does not) has its
//     value replaced by "[redacted]";
//   - in every other string value, error and the message, the value of
//     each sig= field of a SAS token becomes "…" and the value of a
//     connection string's SharedAccessKey= becomes "[redacted]".
//
// Groups are walked; LogValuers are resolved first.
func Redact(h slog.Handler) slog.Handler {
	if r, ok := h.(*redactHandler); ok {
		return r
	}
	return &redactHandler{inner: h}
}

type redactHandler struct{ inner slog.Handler }

func (h *redactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *redactHandler) Handle(ctx context.Context, r slog.Record) error {
	nr := slog.NewRecord(r.Time, r.Level, redactString(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		nr.AddAttrs(redactAttr(a))
		return true
	})
	return h.inner.Handle(ctx, nr)
}

func (h *redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = redactAttr(a)
	}
	return &redactHandler{inner: h.inner.WithAttrs(out)}
}

func (h *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{inner: h.inner.WithGroup(name)}
}

func redactAttr(a slog.Attr) slog.Attr {
	a.Value = a.Value.Resolve()
	if a.Value.Kind() == slog.KindGroup {
		g := a.Value.Group()
		out := make([]slog.Attr, len(g))
		for i, ga := range g {
			out[i] = redactAttr(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	}
	if secretKey(a.Key) {
		if isEmpty(a.Value) {
			return a
		}
		return slog.String(a.Key, Redacted)
	}
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); mayHoldSecret(s) {
			return slog.String(a.Key, redactString(s))
		}
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case error:
			if s := v.Error(); mayHoldSecret(s) {
				return slog.String(a.Key, redactString(s))
			}
		case []byte:
			if s := string(v); mayHoldSecret(s) {
				return slog.String(a.Key, redactString(s))
			}
		case interface{ String() string }:
			if s := v.String(); mayHoldSecret(s) {
				return slog.String(a.Key, redactString(s))
			}
		}
	}
	return a
}

func isEmpty(v slog.Value) bool {
	return v.Kind() == slog.KindString && v.String() == "" ||
		v.Kind() == slog.KindAny && v.Any() == nil
}

// secretKey reports whether an attribute key names a secret: it equals one
// of secretWords, or ends in one as a separate word (after '_', '-', '.',
// ' ', or starting with an upper-case letter after a lower-case one).
func secretKey(k string) bool {
	lk := strings.ToLower(k)
	for _, w := range secretWords {
		if lk == w {
			return true
		}
		if !strings.HasSuffix(lk, w) {
			continue
		}
		i := len(k) - len(w)
		prev, first := rune(k[i-1]), rune(k[i])
		if strings.ContainsRune("_-. ", prev) || unicode.IsUpper(first) && !unicode.IsUpper(prev) {
			return true
		}
	}
	return false
}

// mayHoldSecret is the cheap test before redactString.
func mayHoldSecret(s string) bool {
	return strings.Contains(s, "sig=") || strings.Contains(s, auth.KeySharedAccessKey+"=")
}

// redactString cuts SAS signatures ("sig=…", see auth.Redact) and
// connection-string keys ("SharedAccessKey=[redacted]") out of s.
func redactString(s string) string {
	if !mayHoldSecret(s) {
		return s
	}
	s = auth.Redact(s)
	const field = auth.KeySharedAccessKey + "="
	var b strings.Builder
	for {
		i := strings.Index(s, field)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+len(field)])
		s = s[i+len(field):]
		// The key runs to the next ';' (connection string) or space.
		j := strings.IndexAny(s, "; \t\n\"'")
		if j == 0 {
			continue
		}
		b.WriteString(Redacted)
		if j < 0 {
			s = ""
		} else {
			s = s[j:]
		}
	}
}
