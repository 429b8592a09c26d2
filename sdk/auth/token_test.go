package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const validSig = "kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D"

func TestParseToken(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Token // compared when err is nil
		err  string
	}{
		{name: "node order", in: "SharedAccessSignature sr=uri&sig=" + validSig + "&skn=encode%28%27Me%27%29&se=12345",
			want: Token{SR: "uri", Resource: "uri", Sig: "kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk=", SE: "12345",
				Expiry: time.Unix(12345, 0).UTC(), KeyName: "encode('Me')"}},
		{name: "C DPS order, lower-case hex", in: "SharedAccessSignature sr=0ne000%2fregistrations%2fdev1&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3d&se=99&skn=registration",
			want: Token{SR: "0ne000%2fregistrations%2fdev1", Resource: "0ne000/registrations/dev1",
				Sig: "kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk=", SE: "99", Expiry: time.Unix(99, 0).UTC(), KeyName: "registration"}},
		{name: "sig first, raw sr", in: "SharedAccessSignature sig=" + validSig + "&se=1&sr=h/devices/d",
			want: Token{SR: "h/devices/d", Resource: "h/devices/d", Sig: "kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk=", SE: "1", Expiry: time.Unix(1, 0).UTC()}},
		{name: "unknown field ignored", in: "SharedAccessSignature sr=h&sig=" + validSig + "&se=1&foo=bar",
			want: Token{SR: "h", Resource: "h", Sig: "kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk=", SE: "1", Expiry: time.Unix(1, 0).UTC()}},
		{name: "plus kept in sr", in: "SharedAccessSignature sr=a+b&sig=" + validSig + "&se=1",
			want: Token{SR: "a+b", Resource: "a+b", Sig: "kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk=", SE: "1", Expiry: time.Unix(1, 0).UTC()}},

		{name: "no prefix", in: "sr=h&sig=" + validSig + "&se=1", err: "does not start"},
		{name: "lower-case prefix", in: "sharedaccesssignature sr=h&sig=" + validSig + "&se=1", err: "does not start"},
		{name: "two spaces", in: "SharedAccessSignature  sr=h&sig=" + validSig + "&se=1", err: "whitespace"},
		{name: "space inside", in: "SharedAccessSignature sr=h&sig=" + validSig + "&se=1 2", err: "whitespace"},
		{name: "empty body", in: "SharedAccessSignature ", err: "no fields"},
		{name: "empty field", in: "SharedAccessSignature sr=h&&sig=" + validSig + "&se=1", err: "not name=value"},
		{name: "no equals", in: "SharedAccessSignature sr=h&sig=" + validSig + "&se", err: "not name=value"},
		{name: "missing sr", in: "SharedAccessSignature sig=" + validSig + "&se=1", err: "missing sr"},
		{name: "missing sig", in: "SharedAccessSignature sr=h&se=1", err: "missing sig"},
		{name: "missing se", in: "SharedAccessSignature sr=h&sig=" + validSig, err: "missing se"},
		{name: "duplicate sr", in: "SharedAccessSignature sr=h&sr=h&sig=" + validSig + "&se=1", err: "sr appears twice"},
		{name: "duplicate skn", in: "SharedAccessSignature sr=h&skn=a&sig=" + validSig + "&se=1&skn=a", err: "skn appears twice"},
		{name: "duplicate se", in: "SharedAccessSignature sr=h&se=1&sig=" + validSig + "&se=1", err: "se appears twice"},
		{name: "empty sr", in: "SharedAccessSignature sr=&sig=" + validSig + "&se=1", err: "empty sr"},
		{name: "empty sig", in: "SharedAccessSignature sr=h&sig=&se=1", err: "empty sig"},
		{name: "empty skn", in: "SharedAccessSignature sr=h&sig=" + validSig + "&se=1&skn=", err: "empty skn"},
		{name: "bad percent sr", in: "SharedAccessSignature sr=h%zz&sig=" + validSig + "&se=1", err: "sr is not valid"},
		{name: "sig not base64", in: "SharedAccessSignature sr=h&sig=@@@@&se=1", err: "sig is not standard base64"},
		{name: "negative se", in: "SharedAccessSignature sr=h&sig=" + validSig + "&se=-1", err: "not Unix seconds"},
		{name: "fractional se", in: "SharedAccessSignature sr=h&sig=" + validSig + "&se=1.5", err: "not Unix seconds"},
		{name: "huge se", in: "SharedAccessSignature sr=h&sig=" + validSig + "&se=9999999999999999999", err: "not Unix seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseToken(tt.in)
			if tt.err != "" {
				if !errors.Is(err, ErrMalformedToken) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want ErrMalformedToken containing %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "kcWxXAK2") {
					t.Fatalf("error echoes the signature: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestTokenExpiry(t *testing.T) {
	tok, err := ParseToken("SharedAccessSignature sr=h&sig=" + validSig + "&se=1000")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s int64) time.Time { return time.Unix(s, 0) }
	tests := []struct {
		now     int64
		within  time.Duration
		expired bool
		renew   bool
	}{
		{now: 100, within: time.Minute, expired: false, renew: false},
		{now: 940, within: time.Minute, expired: false, renew: true}, // exactly d before expiry
		{now: 939, within: time.Minute, expired: false, renew: false},
		{now: 999, within: 0, expired: false, renew: false},
		{now: 1000, within: 0, expired: true, renew: true},
		{now: 2000, within: time.Hour, expired: true, renew: true},
	}
	for _, tt := range tests {
		if got := tok.Expired(at(tt.now)); got != tt.expired {
			t.Errorf("Expired(%d) = %v", tt.now, got)
		}
		if got := tok.ExpiresWithin(at(tt.now), tt.within); got != tt.renew {
			t.Errorf("ExpiresWithin(%d, %v) = %v", tt.now, tt.within, got)
		}
	}
}

func TestTokenStringRedacts(t *testing.T) {
	tok, err := ParseToken("SharedAccessSignature sr=h%2Fdevices%2Fd&sig=" + validSig + "&se=1000&skn=registration")
	if err != nil {
		t.Fatal(err)
	}
	want := "SharedAccessSignature sr=h%2Fdevices%2Fd&sig=…&se=1000&skn=registration"
	if got := tok.String(); got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	if tok.StringToSign() != "h%2Fdevices%2Fd\n1000" {
		t.Fatalf("StringToSign() = %q", tok.StringToSign())
	}
}
