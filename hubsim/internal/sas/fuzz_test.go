package sas

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D&skn=encode%28%27Me%27%29&se=12345",
		"SharedAccessSignature sr=0ne000%2fregistrations%2fdev1&sig=" + sig + "&se=99&skn=registration",
		"SharedAccessSignature sr=127.0.0.1/devices/dev1&sig=" + sig + "&se=1",
		"SharedAccessSignature sr=h&sig=YWJjZA&se=1",
		"SharedAccessSignature sr=%&sig=&se=",
		"SharedAccessSignature sr=h&sr=h",
		"SharedAccessSignature ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("parse error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if tok.SR == "" || tok.Sig == "" || tok.SE == "" || tok.Resource == "" {
			t.Fatalf("accepted with an empty required field: %+v", tok)
		}
		// Fields survive a rewrite in another order.
		again := scheme + keySE + "=" + tok.SE + "&" + keySig + "=" + escapeResource(tok.Sig) + "&" + keySR + "=" + tok.SR
		if tok.KeyName != "" {
			again += "&" + keySKN + "=" + escapeResource(tok.KeyName)
		}
		tok2, err := Parse(again)
		if err != nil || tok2 != tok {
			t.Fatalf("re-parse of %q: %+v, %v; first %+v", again, tok2, err, tok)
		}
		// A token covers its own resource whenever that has a host part.
		if !strings.HasPrefix(strings.TrimRight(tok.Resource, "/"), "/") && strings.TrimRight(tok.Resource, "/") != "" && !tok.Covers(tok.Resource) {
			t.Fatalf("token does not cover its own resource %q", tok.Resource)
		}
		// Verification never panics and fails with a sentinel for a key that did not sign.
		if err := tok.Verify("cGFzc3dvcmQ=", time.Unix(0, 0)); err != nil &&
			!errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrExpired) {
			t.Fatalf("Verify error %v wraps no sentinel", err)
		}
	})
}
