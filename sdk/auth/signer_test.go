package auth

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// fakeClock is a settable clock for signer tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

func TestKeySignerRenews(t *testing.T) {
	const key = "cGFzc3dvcmQ="
	clk := &fakeClock{t: time.Unix(1_700_000_000, 500_000_000)}
	s, err := NewDeviceSigner("hub.example", "dev1", "", key, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	tok1, exp1, err := s.Sign(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if exp1.Unix() != 1_700_003_600 {
		t.Fatalf("expiry %v", exp1)
	}
	p, err := ParseToken(tok1)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Expiry.Equal(exp1) || p.SR != "hub.example%2Fdevices%2Fdev1" || p.KeyName != "" {
		t.Fatalf("parsed %+v", p)
	}
	if p.Sig != manualSig(t, key, "hub.example%2Fdevices%2Fdev1\n1700003600") {
		t.Fatal("signature mismatch")
	}
	// Before renewal time the client keeps the token; past it a new Sign gives a later one.
	clk.t = clk.t.Add(50 * time.Minute)
	if !p.ExpiresWithin(clk.Now(), 15*time.Minute) {
		t.Fatal("token should be due for renewal 10 minutes before expiry")
	}
	tok2, exp2, err := s.Sign(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if tok2 == tok1 || exp2.Unix() != 1_700_006_600 {
		t.Fatalf("renewed token %q expiring %v", tok2, exp2)
	}
}

func TestSignerConstructors(t *testing.T) {
	const key = "cGFzc3dvcmQ="
	now := func() time.Time { return time.Unix(1000, 0) }
	tests := []struct {
		name    string
		mk      func() (*KeySigner, error)
		sr, skn string
	}{
		{"device", func() (*KeySigner, error) { return NewDeviceSigner("h", "d", "", key, now) }, "h%2Fdevices%2Fd", ""},
		{"module", func() (*KeySigner, error) { return NewDeviceSigner("h", "d", "m", key, now) }, "h%2Fdevices%2Fd%2Fmodules%2Fm", ""},
		{"dps", func() (*KeySigner, error) { return NewDPSSigner("0ne1", "r1", key, now) }, "0ne1%2Fregistrations%2Fr1", "registration"},
		{"policy", func() (*KeySigner, error) { return NewPolicySigner("h", "registryRead", key, now) }, "h", "registryRead"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.mk()
			if err != nil {
				t.Fatal(err)
			}
			if s.SR() != tt.sr {
				t.Fatalf("SR %q", s.SR())
			}
			tok, _, err := s.Sign(time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			p, err := ParseToken(tok)
			if err != nil || p.KeyName != tt.skn || p.SE != "1060" {
				t.Fatalf("%+v %v", p, err)
			}
		})
	}
	if _, err := NewDeviceSigner("h", "", "", key, now); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("empty device: %v", err)
	}
	if _, err := NewDPSSigner("s", "r", "bad!", now); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("bad key: %v", err)
	}
	if _, err := NewSigner("", "", key, now); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("empty resource: %v", err)
	}
	s, _ := NewDeviceSigner("h", "d", "", key, nil)
	if _, _, err := s.Sign(0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("zero ttl: %v", err)
	}
	// nil clock means the wall clock.
	if _, exp, err := s.Sign(time.Hour); err != nil || exp.Before(time.Now()) {
		t.Errorf("wall clock: %v %v", exp, err)
	}
}

func TestSignerNeverShowsKey(t *testing.T) {
	// A key whose base64 text and raw bytes are both recognisable.
	key := "c2VjcmV0LWtleS1ieXRlcw==" // "secret-key-bytes"
	s, err := NewPolicySigner("h", "owner", key, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "signer", s)
	out := fmt.Sprintf("%v %+v %s", s, s, s) + buf.String()
	for _, leak := range []string{key, "secret-key-bytes", "115 101 99"} {
		if strings.Contains(out, leak) {
			t.Fatalf("output leaks key material %q: %s", leak, out)
		}
	}
	if !strings.Contains(out, "owner") {
		t.Fatalf("output lacks the description: %s", out)
	}
}

func TestSignerFunc(t *testing.T) {
	var f Signer = SignerFunc(func(ttl time.Duration) (string, time.Time, error) {
		return "tok", time.Unix(int64(ttl/time.Second), 0), nil
	})
	tok, exp, err := f.Sign(42 * time.Second)
	if tok != "tok" || exp.Unix() != 42 || err != nil {
		t.Fatalf("%q %v %v", tok, exp, err)
	}
}
