package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// nodeKey is base64("password"), the key of the Node SDK's SAS tests.
// [Azure/azure-iot-sdk-node common/core/test/_shared_access_signature_test.js]
const nodeKey = "cGFzc3dvcmQ="

func TestWireConstants(t *testing.T) {
	// Pin the exact bytes of every wire constant.
	for _, c := range []struct{ got, want string }{
		{tokenPrefix, "SharedAccessSignature "},
		{fieldSR, "sr"}, {fieldSig, "sig"}, {fieldSE, "se"}, {fieldSKN, "skn"},
		{DPSKeyName, "registration"},
		{devicesSegment, "/devices/"}, {modulesSegment, "/modules/"}, {registrationsSegment, "/registrations/"},
		{KeyHostName, "HostName"}, {KeyDeviceID, "DeviceId"}, {KeyModuleID, "ModuleId"},
		{KeySharedAccessKey, "SharedAccessKey"}, {KeySharedAccessKeyName, "SharedAccessKeyName"},
		{KeySharedAccessSignature, "SharedAccessSignature"}, {KeyGatewayHostName, "GatewayHostName"},
		{KeyX509, "x509"},
	} {
		if c.got != c.want {
			t.Errorf("constant = %q, want %q", c.got, c.want)
		}
	}
}

// TestPublishedVectors reproduces, byte for byte, outputs published in Azure
// test suites and documentation.
func TestPublishedVectors(t *testing.T) {
	t.Run("node stringToSign", func(t *testing.T) {
		// [Azure/azure-iot-sdk-node common/core/test/_authorization_test.js]
		if got := StringToSign("blah/blah", 12345); got != "blah/blah\n12345" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("node hmacHash", func(t *testing.T) {
		// [Azure/azure-iot-sdk-node common/core/test/_authorization_test.js]
		got, err := Sign(nodeKey, "string-to-sign")
		if err != nil || got != "o1n1hiIVgzVA2+krq9ty1Z4xsIJKJZP3dYT8MOi65Y4=" {
			t.Fatalf("got %q, %v", got, err)
		}
	})
	t.Run("node token without skn", func(t *testing.T) {
		// [Azure/azure-iot-sdk-node common/core/test/_shared_access_signature_test.js #toString]
		got, err := BuildToken("uri", "", nodeKey, time.Unix(12345, 0))
		want := "SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D&se=12345"
		if err != nil || got != want {
			t.Fatalf("got %q, %v\nwant %q", got, err, want)
		}
	})
	t.Run("node token with skn", func(t *testing.T) {
		// Node writes sr,sig,skn,se; porthole writes sr,sig,se,skn. Same fields, same bytes per field.
		// [Azure/azure-iot-sdk-node common/core/test/_shared_access_signature_test.js #toString]
		node := "SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D&skn=encode%28%27Me%27%29&se=12345"
		got, err := BuildToken("uri", "encode('Me')", nodeKey, time.Unix(12345, 0))
		if err != nil {
			t.Fatal(err)
		}
		want := "SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D&se=12345&skn=encode%28%27Me%27%29"
		if got != want {
			t.Fatalf("got %q\nwant %q", got, want)
		}
		a, errA := ParseToken(node)
		b, errB := ParseToken(got)
		if errA != nil || errB != nil || a != b {
			t.Fatalf("parsed differently: %+v (%v) vs %+v (%v)", a, errA, b, errB)
		}
	})
	t.Run("node skn encoding", func(t *testing.T) {
		// [Azure/azure-iot-sdk-node common/core/test/_shared_access_signature_test.js createWithSigningFunction]
		if got := EncodeComponent("fakeKeyName("); got != "fakeKeyName%28" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("node device and module sr", func(t *testing.T) {
		// [Azure/azure-iot-sdk-node common/core/test/_shared_access_signature_test.js createWithSigningFunction]
		if got := EncodeComponent(DeviceResource("fakeHostName", "fakeDeviceId", "")); got != "fakeHostName%2Fdevices%2FfakeDeviceId" {
			t.Errorf("device sr %q", got)
		}
		if got := EncodeComponent(DeviceResource("fakeHostName", "fakeDeviceId", "fakeModuleId")); got != "fakeHostName%2Fdevices%2FfakeDeviceId%2Fmodules%2FfakeModuleId" {
			t.Errorf("module sr %q", got)
		}
	})
	t.Run("embedded C hub string to sign", func(t *testing.T) {
		// [Azure/azure-sdk-for-c sdk/tests/iot/hub/test_az_iot_hub_client_sas.c]
		sr := EncodeComponent(DeviceResource("myiothub.azure-devices.net", "my_device", ""))
		if got := StringToSign(sr, 1578941692); got != "myiothub.azure-devices.net%2Fdevices%2Fmy_device\n1578941692" {
			t.Errorf("device: %q", got)
		}
		sr = EncodeComponent(DeviceResource("myiothub.azure-devices.net", "my_device", "my_module"))
		if got := StringToSign(sr, 1578941692); got != "myiothub.azure-devices.net%2Fdevices%2Fmy_device%2Fmodules%2Fmy_module\n1578941692" {
			t.Errorf("module: %q", got)
		}
	})
	t.Run("embedded C DPS string to sign", func(t *testing.T) {
		// azure-sdk-for-c writes the DPS infix in lower-case hex, "%2fregistrations%2f";
		// porthole writes upper-case like C#. Same bytes up to hex case.
		// [Azure/azure-sdk-for-c sdk/tests/iot/provisioning/test_az_iot_provisioning_client_sas.c]
		sr := EncodeComponent(DPSResource("0neFEEDC0DE", "myRegistrationId"))
		c := "0neFEEDC0DE%2fregistrations%2fmyRegistrationId"
		if sr == c || !strings.EqualFold(sr, c) || sr != "0neFEEDC0DE%2Fregistrations%2FmyRegistrationId" {
			t.Errorf("sr %q vs C %q", sr, c)
		}
	})
	t.Run("iotedge device token", func(t *testing.T) {
		// [Azure/iotedge edgelet/edgelet-iothub/src/lib.rs token_source_success]: the key
		// there is base64::decode("key"), which is the two bytes 0x91 0xEC ("kew=" in padded
		// base64); expiry 2018-04-26T20:54:15Z. iotedge lower-cases the resource first, so
		// the inputs here are already lower-case.
		exp := time.Date(2018, 4, 26, 20, 54, 15, 0, time.UTC)
		got, err := DeviceToken("miyagley-edge.azure-devices.net", "miyagley1", "", "kew=", exp)
		want := "SharedAccessSignature sr=miyagley-edge.azure-devices.net%2Fdevices%2Fmiyagley1&sig=ynXM1wWasX%2FGvvgnhV%2BLZ5rxWOiCWtyqHMG2Dcd9Pg8%3D&se=1524776055"
		if err != nil || got != want {
			t.Fatalf("got %q, %v\nwant %q", got, err, want)
		}
	})
	t.Run("iotedge device token with '=' in host", func(t *testing.T) {
		// [Azure/iotedge edgelet/edgelet-iothub/src/lib.rs token_source_success_equals]
		exp := time.Date(2018, 4, 26, 20, 54, 15, 0, time.UTC)
		got, err := DeviceToken("mi=yagley-edge.azure-devices.net", "miyagley1", "", "kew=", exp)
		want := "SharedAccessSignature sr=mi%3Dyagley-edge.azure-devices.net%2Fdevices%2Fmiyagley1&sig=R6NGzTl9wTWWI2zqrOhL81kH1HPi%2F15XDxc%2FjLVMHcY%3D&se=1524776055"
		if err != nil || got != want {
			t.Fatalf("got %q, %v\nwant %q", got, err, want)
		}
	})
	t.Run("enrollment group derived key", func(t *testing.T) {
		// [doc: How to provision devices using symmetric key enrollment groups —
		// MicrosoftDocs/azure-docs articles/iot-dps/how-to-legacy-device-symm-key.md; the same
		// pair appears in the IoT Edge symmetric-key provisioning docs and the
		// `az iot dps enrollment-group compute-device-key` example]
		got, err := DeriveGroupKey("8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==",
			"sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")
		if err != nil || got != "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=" {
			t.Fatalf("got %q, %v", got, err)
		}
	})
}

// manualSig computes the signature independently of the package's helpers.
func manualSig(t *testing.T, keyB64, msg string) string {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestTokensForPrincipals(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	exp := time.Unix(1700003600, 0)
	tests := []struct {
		name     string
		build    func() (string, error)
		sr       string
		resource string
		skn      string
	}{
		{"device", func() (string, error) { return DeviceToken("hub.example", "dev1", "", key, exp) },
			"hub.example%2Fdevices%2Fdev1", "hub.example/devices/dev1", ""},
		{"module", func() (string, error) { return DeviceToken("hub.example", "dev1", "mod:a", key, exp) },
			"hub.example%2Fdevices%2Fdev1%2Fmodules%2Fmod%3Aa", "hub.example/devices/dev1/modules/mod:a", ""},
		{"device id needing escapes", func() (string, error) { return DeviceToken("127.0.0.1:8443", "a b+c@d", "", key, exp) },
			"127.0.0.1%3A8443%2Fdevices%2Fa%20b%2Bc%40d", "127.0.0.1:8443/devices/a b+c@d", ""},
		{"dps", func() (string, error) { return DPSToken("0ne000", "dev1", key, exp) },
			"0ne000%2Fregistrations%2Fdev1", "0ne000/registrations/dev1", "registration"},
		{"policy", func() (string, error) { return PolicyToken("hub.example", "iothubowner", key, exp) },
			"hub.example", "hub.example", "iothubowner"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := tt.build()
			if err != nil {
				t.Fatal(err)
			}
			p, err := ParseToken(tok)
			if err != nil {
				t.Fatal(err)
			}
			if p.SR != tt.sr || p.Resource != tt.resource || p.KeyName != tt.skn || !p.Expiry.Equal(exp) {
				t.Fatalf("parsed %+v", p)
			}
			if want := manualSig(t, key, tt.sr+"\n1700003600"); p.Sig != want {
				t.Fatalf("sig %q, want %q", p.Sig, want)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	key := "cGFzc3dvcmQ="
	exp := time.Unix(1700000000, 0)
	tests := []struct {
		name string
		err  error
		fn   func() (string, error)
	}{
		{"empty key", ErrInvalidKey, func() (string, error) { return DeviceToken("h", "d", "", "", exp) }},
		{"bad base64", ErrInvalidKey, func() (string, error) { return DeviceToken("h", "d", "", "not base64!", exp) }},
		{"empty host", ErrInvalidArgument, func() (string, error) { return DeviceToken("", "d", "", key, exp) }},
		{"empty device", ErrInvalidArgument, func() (string, error) { return DeviceToken("h", "", "", key, exp) }},
		{"empty scope", ErrInvalidArgument, func() (string, error) { return DPSToken("", "r", key, exp) }},
		{"empty registration", ErrInvalidArgument, func() (string, error) { return DPSToken("s", "", key, exp) }},
		{"empty policy", ErrInvalidArgument, func() (string, error) { return PolicyToken("h", "", key, exp) }},
		{"epoch expiry", ErrInvalidArgument, func() (string, error) { return DeviceToken("h", "d", "", key, time.Unix(0, 0)) }},
		{"empty sr", ErrInvalidArgument, func() (string, error) { return BuildToken("", "", key, exp) }},
		{"derive empty reg", ErrInvalidArgument, func() (string, error) { return DeriveGroupKey(key, "") }},
		{"derive bad key", ErrInvalidKey, func() (string, error) { return DeriveGroupKey("%%%", "r") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.fn()
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if strings.Contains(err.Error(), "not base64!") {
				t.Fatalf("error echoes the key: %v", err)
			}
		})
	}
}

func TestEncodeComponent(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"AZaz09-._~", "AZaz09-._~"},
		{"a/b", "a%2Fb"},
		{"!'()*", "%21%27%28%29%2A"},
		{"a b+c", "a%20b%2Bc"},
		{"é", "%C3%A9"},
		{"%", "%25"},
	}
	for _, tt := range tests {
		if got := EncodeComponent(tt.in); got != tt.want {
			t.Errorf("EncodeComponent(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SharedAccessSignature sr=h&sig=abc%3D&se=1", "SharedAccessSignature sr=h&sig=…&se=1"},
		{"SharedAccessSignature sig=abc&sr=h", "SharedAccessSignature sig=…&sr=h"},
		{"SharedAccessSignature sr=h&se=1&sig=abc", "SharedAccessSignature sr=h&se=1&sig=…"},
		{"HostName=h;SharedAccessSignature=SharedAccessSignature sr=h&sig=xyz;DeviceId=d",
			"HostName=h;SharedAccessSignature=SharedAccessSignature sr=h&sig=…;DeviceId=d"},
		{"nosig=1&xsig=2", "nosig=1&xsig=2"},
		{"no token", "no token"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
