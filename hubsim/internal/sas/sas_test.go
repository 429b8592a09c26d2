package sas

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWireConstants(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{scheme, "SharedAccessSignature "},
		{keySR, "sr"}, {keySig, "sig"}, {keySE, "se"}, {keySKN, "skn"},
		{RegistrationKeyName, "registration"},
		{RightRegistryRead, "RegistryRead"}, {RightRegistryWrite, "RegistryWrite"},
		{RightServiceConnect, "ServiceConnect"}, {RightDeviceConnect, "DeviceConnect"},
		{RightServiceConfig, "ServiceConfig"}, {RightEnrollmentRead, "EnrollmentRead"},
		{RightEnrollmentWrite, "EnrollmentWrite"}, {RightRegistrationStatusRead, "RegistrationStatusRead"},
		{RightRegistrationStatusWrite, "RegistrationStatusWrite"},
	} {
		if c.got != c.want {
			t.Errorf("constant %q, want %q", c.got, c.want)
		}
	}
}

// Tokens published in Azure test suites verify with their keys.
func TestPublishedTokensVerify(t *testing.T) {
	tests := []struct {
		name, token, key, resource string
		se                         int64
	}{
		{
			// [Azure/azure-iot-sdk-node common/core/test/_shared_access_signature_test.js #toString];
			// key base64("password").
			name:  "node",
			token: "SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D&skn=encode%28%27Me%27%29&se=12345",
			key:   "cGFzc3dvcmQ=", resource: "uri", se: 12345,
		},
		{
			// [Azure/iotedge edgelet/edgelet-iothub/src/lib.rs token_source_success]; the key
			// there is base64::decode("key") = bytes 0x91 0xEC = "kew=".
			name:  "iotedge",
			token: "SharedAccessSignature sr=miyagley-edge.azure-devices.net%2Fdevices%2Fmiyagley1&sig=ynXM1wWasX%2FGvvgnhV%2BLZ5rxWOiCWtyqHMG2Dcd9Pg8%3D&se=1524776055",
			key:   "kew=", resource: "miyagley-edge.azure-devices.net/devices/miyagley1", se: 1524776055,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := Parse(tt.token)
			if err != nil {
				t.Fatal(err)
			}
			if tok.Resource != tt.resource || tok.Expiry.Unix() != tt.se {
				t.Fatalf("parsed %+v", tok)
			}
			if err := tok.Verify(tt.key, time.Unix(tt.se-1, 0)); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if err := tok.Verify(tt.key, time.Unix(tt.se, 0)); !errors.Is(err, ErrExpired) {
				t.Fatalf("at se: %v, want ErrExpired", err)
			}
			if err := tok.Verify("cGFzc3dvcmQx", time.Unix(tt.se-1, 0)); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("other key: %v, want ErrBadSignature", err)
			}
		})
	}
}

const sig = "kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D"

func TestParse(t *testing.T) {
	tests := []struct {
		name, in string
		want     Token
		err      string
	}{
		{name: "node hub", in: "SharedAccessSignature sr=h%2Fdevices%2Fd&sig=" + sig + "&se=10",
			want: Token{SR: "h%2Fdevices%2Fd", Resource: "h/devices/d", Sig: "kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk=", SE: "10", Expiry: time.Unix(10, 0).UTC()}},
		{name: "C DPS", in: "SharedAccessSignature sr=0ne%2fregistrations%2fr&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3d&se=10&skn=registration",
			want: Token{SR: "0ne%2fregistrations%2fr", Resource: "0ne/registrations/r", Sig: "kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk=", SE: "10", Expiry: time.Unix(10, 0).UTC(), KeyName: "registration"}},
		{name: "skn first", in: "SharedAccessSignature skn=p&se=10&sig=" + sig + "&sr=h",
			want: Token{SR: "h", Resource: "h", Sig: "kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk=", SE: "10", Expiry: time.Unix(10, 0).UTC(), KeyName: "p"}},

		{name: "wrong prefix", in: "SharedAccessKey sr=h&sig=" + sig + "&se=10", err: "want prefix"},
		{name: "no fields", in: "SharedAccessSignature ", err: "no fields"},
		{name: "extra space", in: "SharedAccessSignature  sr=h&sig=" + sig + "&se=10", err: "whitespace"},
		{name: "no equals", in: "SharedAccessSignature sr=h&sig&se=10", err: "not key=value"},
		{name: "empty key", in: "SharedAccessSignature =h&sig=" + sig + "&se=10", err: "not key=value"},
		{name: "trailing &", in: "SharedAccessSignature sr=h&sig=" + sig + "&se=10&", err: "not key=value"},
		{name: "duplicate sig", in: "SharedAccessSignature sr=h&sig=" + sig + "&se=10&sig=" + sig, err: `duplicate field "sig"`},
		{name: "unknown field", in: "SharedAccessSignature sr=h&sig=" + sig + "&se=10&sv=1", err: `unknown field "sv"`},
		{name: "upper-case name", in: "SharedAccessSignature SR=h&sig=" + sig + "&se=10", err: `unknown field "SR"`},
		{name: "empty skn", in: "SharedAccessSignature sr=h&sig=" + sig + "&se=10&skn=", err: "empty"},
		{name: "missing sr", in: "SharedAccessSignature sig=" + sig + "&se=10", err: `missing field "sr"`},
		{name: "missing se", in: "SharedAccessSignature sr=h&sig=" + sig, err: `missing field "se"`},
		{name: "missing sig", in: "SharedAccessSignature sr=h&se=10", err: `missing field "sig"`},
		// The C client sends the hub sr raw: a '%' that starts no escape is
		// part of a device id, and sr is its own resource.
		{name: "raw sr with %", in: "SharedAccessSignature sr=h/devices/a%zz&sig=" + sig + "&se=10",
			want: Token{SR: "h/devices/a%zz", Resource: "h/devices/a%zz", Sig: "kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk=", SE: "10", Expiry: time.Unix(10, 0).UTC()}},
		{name: "sig not base64", in: "SharedAccessSignature sr=h&sig=%%%&se=10", err: "percent"},
		{name: "sig not base64 2", in: "SharedAccessSignature sr=h&sig=a!b&se=10", err: "not base64"},
		{name: "se float", in: "SharedAccessSignature sr=h&sig=" + sig + "&se=10.0", err: "not decimal"},
		{name: "se negative", in: "SharedAccessSignature sr=h&sig=" + sig + "&se=-10", err: "not decimal"},
		{name: "se overflow", in: "SharedAccessSignature sr=h&sig=" + sig + "&se=9999999999999999999", err: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.err != "" {
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want ErrMalformed containing %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "kcWxXAK2") {
					t.Fatalf("error shows the signature: %v", err)
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

func TestCovers(t *testing.T) {
	tests := []struct {
		sr, resource string
		want         bool
	}{
		{"hub.example/devices/dev1", "hub.example/devices/dev1", true},
		{"HUB.Example/devices/dev1", "hub.example/devices/dev1", true},
		{"hub.example/devices/dev1/", "hub.example/devices/dev1", true},
		{"hub.example/devices/dev1", "hub.example/devices/dev1/", true},
		{"hub.example", "hub.example/devices/dev1", true},
		{"hub.example/", "hub.example/devices/dev1", true},
		{"hub.example/devices", "hub.example/devices/dev1/modules/m", true},
		{"hub.example/devices/dev1", "hub.example/devices/dev1/modules/m", true},
		{"hub.example/devices/dev1", "hub.example/devices/dev10", false},
		{"hub.example/devices/dev1", "hub.example/devices/DEV1", false},
		{"hub.example/devices/dev1/modules/m", "hub.example/devices/dev1", false},
		{"hub.example/devices/dev1", "other.example/devices/dev1", false},
		{"hub.example", "hub.example.evil/devices/dev1", false},
		{"hub.example", "", false},
		{"/", "hub.example", false},
		{"0ne000/registrations/r1", "0ne000/registrations/r1", true},
		{"0ne000/registrations/r1", "0ne000/registrations/r2", false},
	}
	for _, tt := range tests {
		tok := Token{Resource: tt.sr}
		if got := tok.Covers(tt.resource); got != tt.want {
			t.Errorf("Token{sr=%q}.Covers(%q) = %v, want %v", tt.sr, tt.resource, got, tt.want)
		}
	}
}

func TestPolicyHas(t *testing.T) {
	p := Policy{Rights: []string{"RegistryRead, RegistryWrite", RightServiceConnect}}
	for r, want := range map[string]bool{
		RightRegistryRead: true, RightRegistryWrite: true, RightServiceConnect: true,
		RightDeviceConnect: false, "registryread": false, "": false,
	} {
		if got := p.Has(r); got != want {
			t.Errorf("Has(%q) = %v, want %v", r, got, want)
		}
	}
}

func TestVerifyEdgeCases(t *testing.T) {
	tok, err := Parse("SharedAccessSignature sr=uri&sig=" + sig + "&se=12345")
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.Verify("not base64!", time.Unix(1, 0)); !errors.Is(err, ErrBadSignature) || strings.Contains(err.Error(), "not base64!") {
		t.Fatalf("bad key: %v", err)
	}
	if _, err := VerifyDevice(tok.SR, "uri", "", "", time.Unix(1, 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("not a token: %v", err)
	}
	full := "SharedAccessSignature sr=uri&sig=" + sig + "&se=12345"
	if _, err := VerifyDevice(full, "uri", "", "", time.Unix(1, 0)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("no keys: %v", err)
	}
	// Secondary key alone verifies.
	if _, err := VerifyDevice(full, "uri", "c2Vjb25k", "cGFzc3dvcmQ=", time.Unix(1, 0)); err != nil {
		t.Fatalf("secondary: %v", err)
	}
}

func TestDeriveDeviceKey(t *testing.T) {
	// [doc: How to provision devices using symmetric key enrollment groups —
	// MicrosoftDocs/azure-docs articles/iot-dps/how-to-legacy-device-symm-key.md]
	got, err := DeriveDeviceKey("8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==",
		"sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")
	if err != nil || got != "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := DeriveDeviceKey("!!", "r"); err == nil {
		t.Error("bad group key accepted")
	}
	if _, err := DeriveDeviceKey("cGFzc3dvcmQ=", ""); err == nil {
		t.Error("empty registration id accepted")
	}
}

// A device id containing '%' is covered whether sr arrives encoded (Node,
// C#) or raw (the C client), and neither reading widens to another id.
func TestCoversRawAndEncodedSR(t *testing.T) {
	tests := []struct {
		sr, resource string
		want         bool
	}{
		{"h%2Fdevices%2Fdev%2541x", "h/devices/dev%41x", true}, // encoded
		{"h/devices/dev%41x", "h/devices/dev%41x", true},       // raw (C client)
		{"h/devices/dev%41x", "h/devices/devAx", true},         // decoded reading; the key decides
		{"h/devices/a%zz", "h/devices/a%zz", true},             // raw, not a valid escape
		{"h/devices/100%", "h/devices/100%", true},
		{"h/devices/dev%41x", "h/devices/dev%41y", false},
		{"h%2Fdevices%2Fdev%2541x", "h/devices/devAx", false},
		{"h/devices/a%2Fb", "h/devices/a%2Fb", true},
		{"h/devices/a%2Fb", "h/devices/a/b", true}, // decoded reading
		{"h/devices/a%2Fb", "h/devices/a", false},
	}
	for _, tt := range tests {
		tok, err := Parse("SharedAccessSignature sr=" + tt.sr + "&sig=" + sig + "&se=10")
		if err != nil {
			t.Fatalf("sr %q: %v", tt.sr, err)
		}
		if got := tok.Covers(tt.resource); got != tt.want {
			t.Errorf("sr %q covers %q = %v, want %v", tt.sr, tt.resource, got, tt.want)
		}
	}
}
