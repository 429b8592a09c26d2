package logsink

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/porthole-iot/porthole/agent/internal/config"
)

type tokenValuer string

func (v tokenValuer) LogValue() slog.Value { return slog.StringValue(string(v)) }

func TestSecretKey(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{"key", true},
		{"KEY", true},
		{"token", true},
		{"password", true},
		{"sig", true},
		{"SharedAccessKey", true},
		{"sharedaccesskey", true},
		{"deviceKey", true},
		{"sas_token", true},
		{"proxy-password", true},
		{"http.authorization", true},
		{"group_key", true},
		{"monkey", false},
		{"keyName", false},
		{"device", false},
		{"stream", false},
		{"tokens_left", false},
		{"designation", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := secretKey(tt.key); got != tt.want {
			t.Errorf("secretKey(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
}

func TestRedactString(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"plain text", "plain text"},
		{"SharedAccessSignature sr=a%2Fb&sig=AbC%2B%3D&se=1", "SharedAccessSignature sr=a%2Fb&sig=…&se=1"},
		{"SharedAccessSignature sig=xyz&se=1&sr=h", "SharedAccessSignature sig=…&se=1&sr=h"},
		{"HostName=h.azure-devices.net;DeviceId=d;SharedAccessKey=c2VjcmV0", "HostName=h.azure-devices.net;DeviceId=d;SharedAccessKey=[redacted]"},
		{"HostName=h;SharedAccessKey=abc;DeviceId=d", "HostName=h;SharedAccessKey=[redacted];DeviceId=d"},
		{"connect failed: SharedAccessKey=abc rest", "connect failed: SharedAccessKey=[redacted] rest"},
		{"SharedAccessKey=;x", "SharedAccessKey=;x"},
		{"design=x", "design=x"},
	}
	for _, tt := range tests {
		if got := redactString(tt.in); got != tt.want {
			t.Errorf("redactString(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactHandler(t *testing.T) {
	const tok = "SharedAccessSignature sr=h%2Fdevices%2Fd&sig=U0VDUkVU&se=99"
	const secret = "U0VDUkVU"
	tests := []struct {
		name string
		log  func(l *slog.Logger)
		want []string // substrings of the output
	}{
		{"key names", func(l *slog.Logger) {
			l.Info("m", "key", "k1", "token", tok, "password", "pw", "SharedAccessKey", "s", "device", "dev1")
		}, []string{"key=[redacted]", "token=[redacted]", "password=[redacted]", "SharedAccessKey=[redacted]", "device=dev1"}},
		{"empty secret kept empty", func(l *slog.Logger) { l.Info("m", "key", "") }, []string{`key=""`}},
		{"sig in any value", func(l *slog.Logger) { l.Info("m", "header", tok) }, []string{"sig=…&se=99"}},
		{"sig in message", func(l *slog.Logger) { l.Info("sent " + tok) }, []string{"sig=…"}},
		{"error value", func(l *slog.Logger) {
			l.Info("m", "err", fmt.Errorf("dial: %w", errors.New("bad "+tok)))
		}, []string{"sig=…"}},
		{"bytes value", func(l *slog.Logger) { l.Info("m", "raw", []byte(tok)) }, []string{"sig=…"}},
		{"LogValuer", func(l *slog.Logger) { l.Info("m", "hdr", tokenValuer(tok)) }, []string{"sig=…"}},
		{"group", func(l *slog.Logger) {
			l.Info("m", slog.Group("auth", "sig", "abc", "sr", "x", "conn", "HostName=h;SharedAccessKey="+secret))
		}, []string{"auth.sig=[redacted]", "auth.sr=x", "SharedAccessKey=[redacted]"}},
		{"WithAttrs", func(l *slog.Logger) { l.With("deviceKey", secret).With("t", tok).Info("m") }, []string{"deviceKey=[redacted]", "sig=…"}},
		{"WithGroup", func(l *slog.Logger) { l.WithGroup("g").Info("m", "token", secret) }, []string{"g.token=[redacted]"}},
		{"config.Secret", func(l *slog.Logger) { l.Info("m", "k", config.NewSecret(secret)) }, []string{"k=[redacted]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := slog.New(Redact(slog.NewTextHandler(&buf, nil)))
			tt.log(l)
			out := buf.String()
			if strings.Contains(out, secret) || strings.Contains(out, "k1") || strings.Contains(out, "=pw") {
				t.Fatalf("secret leaked: %s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("missing %q in %s", w, out)
				}
			}
		})
	}
}

func TestRedactIdempotentWrap(t *testing.T) {
	h := Redact(slog.NewTextHandler(&bytes.Buffer{}, nil))
	if Redact(h) != h {
		t.Error("Redact wrapped a redacting handler twice")
	}
}

func FuzzRedactString(f *testing.F) {
	for _, s := range []string{
		"SharedAccessSignature sr=a&sig=b&se=1",
		"HostName=h;SharedAccessKey=abc",
		"sig=",
		"SharedAccessKey=",
		"x sig=a sig=b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := redactString(s)
		if !mayHoldSecret(s) && out != s {
			t.Fatalf("changed a string without secrets: %q → %q", s, out)
		}
		if redactString(out) != out {
			t.Fatalf("not idempotent: %q → %q → %q", s, out, redactString(out))
		}
	})
}
