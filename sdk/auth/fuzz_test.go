package auth

import (
	"strings"
	"testing"
	"time"
)

func FuzzParseToken(f *testing.F) {
	for _, s := range []string{
		"SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D&skn=encode%28%27Me%27%29&se=12345",
		"SharedAccessSignature sr=0ne000%2fregistrations%2fdev1&sig=" + validSig + "&se=99&skn=registration",
		"SharedAccessSignature sr=127.0.0.1/devices/dev1&sig=" + validSig + "&se=1",
		"SharedAccessSignature sr=h&sr=h",
		"SharedAccessSignature sr=%&sig=&se=",
		"SharedAccessSignature ",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		if tok.SR == "" || tok.Sig == "" || tok.SE == "" {
			t.Fatalf("accepted with an empty required field: %+v", tok)
		}
		// Writing the fields back and parsing again gives the same token.
		again := tokenPrefix + "se=" + tok.SE + "&sig=" + EncodeComponent(tok.Sig) + "&sr=" + tok.SR
		if tok.KeyName != "" {
			again += "&skn=" + EncodeComponent(tok.KeyName)
		}
		tok2, err := ParseToken(again)
		if err != nil || tok2 != tok {
			t.Fatalf("re-parse of %q: %+v, %v; first %+v", again, tok2, err, tok)
		}
		if strings.Contains(tok.String(), tok.Sig) && len(tok.Sig) > 4 {
			t.Fatalf("String() shows the signature: %s", tok.String())
		}
	})
}

// FuzzTokenRoundTrip: build → parse gives back the fields.
func FuzzTokenRoundTrip(f *testing.F) {
	f.Add("hub.example/devices/dev1", "", int64(1700000000))
	f.Add("0ne000/registrations/dev1", "registration", int64(1))
	f.Add("hub.example", "encode('Me')", int64(1<<62))
	f.Add("a b+c%/é", "k&=y", int64(12345))
	f.Fuzz(func(t *testing.T, resource, keyName string, se int64) {
		if resource == "" || se <= 0 {
			return
		}
		const key = "cGFzc3dvcmQ="
		s, err := NewSigner(resource, keyName, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := s.SignUntil(time.Unix(se, 0))
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParseToken(tok)
		if err != nil {
			t.Fatalf("ParseToken(%q): %v", tok, err)
		}
		if p.Resource != resource || p.KeyName != keyName || p.Expiry.Unix() != se || p.SR != EncodeComponent(resource) {
			t.Fatalf("round trip of (%q, %q, %d) gave %+v", resource, keyName, se, p)
		}
		if p.Sig != manualSig(t, key, p.StringToSign()) {
			t.Fatal("signature does not cover sr+\"\\n\"+se")
		}
	})
}

func FuzzParseDeviceConnectionString(f *testing.F) {
	for _, s := range []string{
		"HostName=hub.example;DeviceId=dev1;SharedAccessKey=" + csKey,
		"HostName=h;DeviceId=d;ModuleId=m;x509=true;GatewayHostName=g;Other=1",
		"HostName=h;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=h&sig=" + validSig + "&se=1",
		"HostName=h;;DeviceId=d;SharedAccessKey=" + csKey + ";",
		"hostname=h",
		"=;=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseDeviceConnectionString(s)
		if err != nil {
			return
		}
		if c.HostName == "" || c.DeviceID == "" {
			t.Fatalf("accepted without HostName/DeviceId: %#v", c)
		}
		c2, err := ParseDeviceConnectionString(c.Encode())
		if err != nil || !equalDevice(c, c2) {
			t.Fatalf("round trip of %q via %q: %#v, %v", s, c.Encode(), c2, err)
		}
		if c.SharedAccessKey != "" && strings.Contains(c.String(), c.SharedAccessKey) && len(c.SharedAccessKey) > 4 {
			t.Fatalf("String() shows the key")
		}
	})
}

// FuzzDeviceConnectionStringBuild: fields → Encode → parse gives back the fields.
func FuzzDeviceConnectionStringBuild(f *testing.F) {
	f.Add("hub.example", "dev1", "", "", true)
	f.Add("h", "d", "m", "g:8883", false)
	f.Fuzz(func(t *testing.T, host, device, module, gateway string, useKey bool) {
		for _, v := range []string{host, device, module, gateway} {
			if strings.ContainsRune(v, ';') || strings.TrimSpace(v) != v {
				return // not representable in a connection string
			}
		}
		if host == "" || device == "" {
			return
		}
		c := DeviceConnectionString{HostName: host, DeviceID: device, ModuleID: module, GatewayHostName: gateway}
		if useKey {
			c.SharedAccessKey = csKey
		} else {
			c.X509 = true
		}
		got, err := ParseDeviceConnectionString(c.Encode())
		if err != nil || !equalDevice(got, c) {
			t.Fatalf("%q: %#v, %v", c.Encode(), got, err)
		}
	})
}
