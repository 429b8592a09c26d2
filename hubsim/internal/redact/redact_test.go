package redact

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	sig   = "q9Xo4cB%2BzZ0ZyS6Ezn1u0bRz9bq8b7o1q2pQm0eJq8E%3D"
	token = "SharedAccessSignature sr=hub1.local%2Fdevices%2Fdev1&sig=" + sig + "&se=1767225600"
	key   = "a2V5LW9uZS1rZXktb25lLWtleS1vbmUta2V5LW9uZS0xMjM0NTY3OA=="
)

func TestString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "device connected", "device connected"},
		{"sas token", "auth " + token + " refused", "auth SharedAccessSignature <redacted> refused"},
		{"token in quotes", `header="` + token + `"`, `header="SharedAccessSignature <redacted>"`},
		{"stream topic", "$iothub/streams/POST/ssh/?$rid=1&$url=wss%3A%2F%2Fh%3A443%2Fbridges%2Fx&$auth=eyJhbGciOi.x.y",
			"$iothub/streams/POST/ssh/?$rid=1&$url=wss%3A%2F%2Fh%3A443%2Fbridges%2Fx&$auth=<redacted>"},
		{"encoded auth", "%24auth=abc123&x=1", "%24auth=<redacted>&x=1"},
		{"sig field", "sr=a&sig=" + sig + "&se=1", "sr=a&sig=<redacted>&se=1"},
		{"connection string key", "HostName=h;DeviceId=d;SharedAccessKey=" + key, "HostName=h;DeviceId=d;SharedAccessKey=<redacted>"},
		{"connection string sas", "HostName=h;SharedAccessSignature=" + token, "HostName=h;SharedAccessSignature=<redacted> <redacted>"},
		{"already masked", "sig=<redacted>", "sig=<redacted>"},
		{"not a field", "signal=3 signature ok", "signal=3 signature ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := String(tc.in)
			if got != tc.want {
				t.Errorf("String(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
			if again := String(got); again != got {
				t.Errorf("not idempotent: %q -> %q", got, again)
			}
		})
	}
}

type stringer struct{ s string }

func (s stringer) String() string { return s.s }

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := Logger(Logger(base)) // wrapping twice is harmless
	if _, ok := l.Handler().(*handler); !ok {
		t.Fatalf("Logger did not wrap: %T", l.Handler())
	}
	l = l.With("password", "p@ss-"+key, "hub", "hub1")
	l.Debug("publish failed topic=$auth=tok-in-message", "topic", "a/?$auth=tok-in-topic",
		"err", fmt.Errorf("refused: %w", errors.New("SharedAccessKey="+key)),
		"who", stringer{"sig=" + sig},
		"list", []string{"x", "$auth=tok-in-list"},
		slog.Group("g", "primaryKey", key, "Authorization", token, "n", 3),
		"empty", "")
	out := buf.String()
	for _, secret := range []string{key, sig, "tok-in-message", "tok-in-topic", "tok-in-list", "p@ss"} {
		if strings.Contains(out, secret) {
			t.Errorf("log line holds %q:\n%s", secret, out)
		}
	}
	for _, keep := range []string{"hub=hub1", "g.n=3", "publish failed", `empty=""`} {
		if !strings.Contains(out, keep) {
			t.Errorf("log line lost %q:\n%s", keep, out)
		}
	}
	if Logger(nil) != nil {
		t.Error("Logger(nil) != nil")
	}
}

func FuzzString(f *testing.F) {
	for _, s := range []string{token, "sig=" + sig, "$auth=x&y", "SharedAccessKey=" + key, "plain"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := String(s)
		if String(got) != got {
			t.Fatalf("not idempotent on %q", s)
		}
		// A masked line never still carries a value after sig= / $auth=.
		for _, m := range secretField.FindAllStringSubmatchIndex(got, -1) {
			if v := got[m[5]:m[1]]; v != "" {
				t.Fatalf("String(%q) = %q keeps value %q", s, got, v)
			}
		}
	})
}
