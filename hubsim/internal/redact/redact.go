package redact

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
)

// Mask replaces a redacted value.
const Mask = "<redacted>"

// sasToken is a whole SAS token: the scheme word, then the fields up to the
// next blank or quote.
var sasToken = regexp.MustCompile(`(?i)(SharedAccessSignature)(\s+|%20|\+)[^\s"'<>]+`)

// secretField is a credential-carrying field inside a query string,
// topic property bag, connection string or token: its value runs to the
// next separator. "%24auth" and "sig%3D" are the percent-encoded forms.
var secretField = regexp.MustCompile(`(?i)((?:\$|%24)auth|\bsig|SharedAccessKey|SharedAccessSignature)(=|%3D)[^&;\s"'<>]*`)

// String returns s with every credential value masked.
func String(s string) string {
	if !mayHoldSecret(s) {
		return s
	}
	s = sasToken.ReplaceAllString(s, "${1} "+Mask)
	return secretField.ReplaceAllStringFunc(s, func(m string) string {
		loc := secretField.FindStringSubmatchIndex(m)
		if loc[5] == len(m) {
			return m // no value (or already masked: '<' ends the value)
		}
		return m[:loc[5]] + Mask
	})
}

// mayHoldSecret is a cheap pre-check so ordinary lines skip the regexps.
func mayHoldSecret(s string) bool {
	l := strings.ToLower(s)
	return strings.Contains(l, "sig") || strings.Contains(l, "auth") ||
		strings.Contains(l, "sharedaccess")
}

// secretName reports whether an attribute's name says its value is a secret.
func secretName(k string) bool {
	l := strings.ToLower(k)
	for _, w := range []string{"key", "password", "passwd", "token", "authorization", "secret", "credential"} {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

// Handler wraps h so every record it writes is redacted.
func Handler(h slog.Handler) slog.Handler {
	if _, ok := h.(*handler); ok {
		return h
	}
	return &handler{next: h}
}

// Logger returns l writing through Handler; nil stays nil.
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return nil
	}
	if _, ok := l.Handler().(*handler); ok {
		return l
	}
	return slog.New(Handler(l.Handler()))
}

type handler struct{ next slog.Handler }

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, String(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(Attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = Attr(a)
	}
	return &handler{next: h.next.WithAttrs(red)}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{next: h.next.WithGroup(name)}
}

// Attr returns a with its value redacted (groups recursively).
func Attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		g := v.Group()
		red := make([]slog.Attr, len(g))
		for i, x := range g {
			red[i] = Attr(x)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(red...)}
	}
	if secretName(a.Key) {
		if v.Kind() == slog.KindString && v.String() == "" {
			return slog.Attr{Key: a.Key, Value: v}
		}
		return slog.String(a.Key, Mask)
	}
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, String(v.String()))
	case slog.KindAny:
		// Errors, Stringers and anything else a handler would print:
		// render once, redact the text.
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, String(err.Error()))
		}
		if s, ok := v.Any().(interface{ String() string }); ok {
			return slog.String(a.Key, String(s.String()))
		}
		if s, ok := v.Any().([]string); ok {
			out := make([]string, len(s))
			for i, x := range s {
				out[i] = String(x)
			}
			return slog.Any(a.Key, out)
		}
		return slog.Attr{Key: a.Key, Value: v}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
