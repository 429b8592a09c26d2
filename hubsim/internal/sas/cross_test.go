package sas_test

// Cross-tests: tokens minted by the SDK (sdk/auth) and tokens shaped by hand
// like the official SDKs send them must verify here. Only this external test
// package may import sdk/...; package sas itself never does.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/sas"
	"github.com/porthole-iot/porthole/sdk/auth"
)

var (
	now    = time.Unix(1_700_000_000, 0)
	expiry = now.Add(time.Hour)
	key1   = base64.StdEncoding.EncodeToString([]byte("primary-key-0123456789abcdef0123"))
	key2   = base64.StdEncoding.EncodeToString([]byte("secondary-key-0123456789abcdef01"))
	other  = base64.StdEncoding.EncodeToString([]byte("someone-elses-key-0123456789abcd"))
)

const host = "127.0.0.1"

var policies = []sas.Policy{
	{Name: "iothubowner", PrimaryKey: key1, SecondaryKey: key2,
		Rights: []string{"RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect"}},
	{Name: "registryRead", PrimaryKey: other, Rights: []string{sas.RightRegistryRead}},
	{Name: "provisioningserviceowner", PrimaryKey: key1,
		Rights: []string{sas.RightServiceConfig, sas.RightEnrollmentRead, sas.RightEnrollmentWrite,
			sas.RightDeviceConnect, sas.RightRegistrationStatusRead, sas.RightRegistrationStatusWrite}},
}

// must unwraps a token builder's result; a builder error is a broken test.
func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

func TestSDKTokensVerify(t *testing.T) {
	dev := must(auth.DeviceToken(host, "dev1", "", key1, expiry))
	mod := must(auth.DeviceToken(host, "dev1", "mod1", key2, expiry))
	dps := must(auth.DPSToken("0ne000", "dev1", key1, expiry))
	pol := must(auth.PolicyToken(host, "iothubowner", key2, expiry))
	signer, err := auth.NewDeviceSigner(host, "dev1", "", key1, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	renewed, _, err := signer.Sign(30 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, token, resource string
		policy, need          string // non-empty policy → VerifyPolicy
		skn                   string
	}{
		{name: "device", token: dev, resource: host + "/devices/dev1"},
		{name: "device via signer", token: renewed, resource: host + "/devices/dev1"},
		{name: "module", token: mod, resource: host + "/devices/dev1/modules/mod1"},
		{name: "dps", token: dps, resource: "0ne000/registrations/dev1", skn: "registration"},
		{name: "policy, hub-level sr covers a device", token: pol, resource: host + "/devices/dev9",
			policy: "iothubowner", need: sas.RightRegistryWrite, skn: "iothubowner"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tok sas.Token
			var err error
			if tt.policy != "" {
				tok, err = sas.VerifyPolicy(tt.token, tt.resource, policies, tt.need, now)
			} else {
				tok, err = sas.VerifyDevice(tt.token, tt.resource, key1, key2, now)
			}
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if tok.KeyName != tt.skn {
				t.Fatalf("skn %q, want %q", tok.KeyName, tt.skn)
			}
			// The SDK's parser and hubsim's agree on every field.
			a, err := auth.ParseToken(tt.token)
			if err != nil {
				t.Fatal(err)
			}
			if a.SR != tok.SR || a.Resource != tok.Resource || a.Sig != tok.Sig || !a.Expiry.Equal(tok.Expiry) || a.KeyName != tok.KeyName || a.SE != tok.SE {
				t.Fatalf("parsers disagree: sdk %+v, hubsim %+v", a, tok)
			}
		})
	}
}

func TestSDKGroupKeyVerifies(t *testing.T) {
	group := base64.StdEncoding.EncodeToString([]byte("enrollment-group-key-0123456789a"))
	sdkKey := must(auth.DeriveGroupKey(group, "sn-007"))
	simKey, err := sas.DeriveDeviceKey(group, "sn-007")
	if err != nil || simKey != sdkKey {
		t.Fatalf("derivations differ: sdk %q, hubsim %q (%v)", sdkKey, simKey, err)
	}
	tok := must(auth.DPSToken("0ne000", "sn-007", sdkKey, expiry))
	if _, err := sas.VerifyDevice(tok, "0ne000/registrations/sn-007", simKey, "", now); err != nil {
		t.Fatal(err)
	}
}

// tamperSig flips one character of the sig value.
func tamperSig(t *testing.T, token string) string {
	t.Helper()
	i := strings.Index(token, "sig=") + len("sig=")
	c := byte('A')
	if token[i] == 'A' {
		c = 'B'
	}
	return token[:i] + string(c) + token[i+1:]
}

func TestSDKTokensRejected(t *testing.T) {
	dev := must(auth.DeviceToken(host, "dev1", "", key1, expiry))
	pol := must(auth.PolicyToken(host, "iothubowner", key1, expiry))
	wrongKeyPolicy := must(auth.PolicyToken(host, "iothubowner", other, expiry))
	unknownPolicy := must(auth.PolicyToken(host, "nosuch", key1, expiry))
	readOnly := must(auth.PolicyToken(host, "registryRead", other, expiry))
	otherHub := must(auth.PolicyToken("hub2.example", "iothubowner", key1, expiry))
	// Same signature, sr swapped to another device.
	swapped := strings.Replace(dev, "dev1", "dev2", 1)

	tests := []struct {
		name     string
		verify   func() error
		want     error
		mentions string
	}{
		{"tampered sig", func() error {
			_, err := sas.VerifyDevice(tamperSig(t, dev), host+"/devices/dev1", key1, key2, now)
			return err
		}, sas.ErrBadSignature, "sr"},
		{"sr changed to another device", func() error {
			_, err := sas.VerifyDevice(swapped, host+"/devices/dev2", key1, key2, now)
			return err
		}, sas.ErrBadSignature, "dev2"},
		{"token for another device", func() error {
			_, err := sas.VerifyDevice(dev, host+"/devices/dev2", key1, key2, now)
			return err
		}, sas.ErrWrongResource, "dev2"},
		{"device key of someone else", func() error {
			_, err := sas.VerifyDevice(dev, host+"/devices/dev1", other, "", now)
			return err
		}, sas.ErrBadSignature, ""},
		{"expired", func() error {
			_, err := sas.VerifyDevice(dev, host+"/devices/dev1", key1, key2, expiry)
			return err
		}, sas.ErrExpired, strconv.FormatInt(expiry.Unix(), 10)},
		{"device token on a policy endpoint", func() error {
			_, err := sas.VerifyPolicy(dev, host, policies, "", now)
			return err
		}, sas.ErrPermission, "no skn"},
		{"unknown skn", func() error {
			_, err := sas.VerifyPolicy(unknownPolicy, host, policies, "", now)
			return err
		}, sas.ErrPermission, "nosuch"},
		{"skn of a policy whose key did not sign", func() error {
			_, err := sas.VerifyPolicy(wrongKeyPolicy, host, policies, "", now)
			return err
		}, sas.ErrBadSignature, "iothubowner"},
		{"missing right", func() error {
			_, err := sas.VerifyPolicy(readOnly, host+"/devices/d", policies, sas.RightRegistryWrite, now)
			return err
		}, sas.ErrPermission, "RegistryWrite"},
		{"policy token for another hub", func() error {
			_, err := sas.VerifyPolicy(otherHub, host, policies, "", now)
			return err
		}, sas.ErrWrongResource, "hub2.example"},
		{"expired policy token", func() error {
			_, err := sas.VerifyPolicy(pol, host, policies, "", expiry.Add(time.Second))
			return err
		}, sas.ErrExpired, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.verify()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			for _, s := range []error{sas.ErrMalformed, sas.ErrBadSignature, sas.ErrExpired, sas.ErrWrongResource, sas.ErrPermission} {
				if s != tt.want && errors.Is(err, s) {
					t.Fatalf("err %v also wraps %v", err, s)
				}
			}
			if !strings.Contains(err.Error(), tt.mentions) {
				t.Fatalf("err %q does not say %q", err, tt.mentions)
			}
			for _, secret := range []string{key1, key2, other, "sig=", tokenSig(dev), tokenSig(pol)} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("err %q reveals %q", err, secret)
				}
			}
		})
	}
}

func tokenSig(token string) string {
	i := strings.Index(token, "sig=") + len("sig=")
	j := strings.IndexByte(token[i:], '&')
	return token[i : i+j]
}

// encode percent-encodes every byte outside keep with hex of the given case.
func encode(s, keep string, lower bool) string {
	hex := "0123456789ABCDEF"
	if lower {
		hex = "0123456789abcdef"
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(keep, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// Encoders as the official SDKs apply them.
var (
	// Node: encodeURIComponent + !'()* escaped [Azure/azure-iot-sdk-node common/core/src/authorization.ts].
	nodeEnc = func(s string) string { return encode(s, "-_.~", false) }
	// C: azure-c-shared-utility URL_Encode keeps alnum and !()*-._, lower-case hex
	// [Azure/azure-c-shared-utility src/urlencode.c].
	cEnc = func(s string) string { return encode(s, "!()*-._", true) }
	// C#: WebUtility.UrlEncode keeps alnum and -_.!*(), upper-case hex.
	csEnc = func(s string) string { return encode(s, "-_.!*()", false) }
)

// handSig signs signed+"\n"+se by hand.
func handSig(t *testing.T, keyB64, signed string, se int64) string {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(signed + "\n" + strconv.FormatInt(se, 10)))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// TestOfficialSDKShapes builds tokens shaped exactly as the official SDKs
// send them (PROTOCOL.md §1, §14, §15) and checks they verify.
func TestOfficialSDKShapes(t *testing.T) {
	se := expiry.Unix()
	ses := strconv.FormatInt(se, 10)
	hubRes := host + "/devices/dev1"
	dpsRes := "0ne000/registrations/dev1"
	tests := []struct {
		name, token, resource string
		policy                bool
	}{
		{
			// Node device SDK: sr percent-encoded, no skn, order sr,sig,se.
			name:     "node hub device",
			token:    "SharedAccessSignature sr=" + nodeEnc(hubRes) + "&sig=" + nodeEnc(handSig(t, key1, nodeEnc(hubRes), se)) + "&se=" + ses,
			resource: hubRes,
		},
		{
			// C SDK (device streams preview): sr raw, sig URL-encoded with lower-case hex.
			name:     "C hub device",
			token:    "SharedAccessSignature sr=" + hubRes + "&sig=" + cEnc(handSig(t, key1, hubRes, se)) + "&se=" + ses,
			resource: hubRes,
		},
		{
			// Node DPS symmetric-key client: sr raw, order sr,sig,skn,se.
			name:     "node DPS",
			token:    "SharedAccessSignature sr=" + dpsRes + "&sig=" + nodeEnc(handSig(t, key2, dpsRes, se)) + "&skn=registration&se=" + ses,
			resource: dpsRes,
		},
		{
			// C SDK DPS: sr URL_EncodeString'd (lower-case hex), order sr,sig,se,skn.
			name:     "C DPS",
			token:    "SharedAccessSignature sr=" + cEnc(dpsRes) + "&sig=" + cEnc(handSig(t, key1, cEnc(dpsRes), se)) + "&se=" + ses + "&skn=registration",
			resource: dpsRes,
		},
		{
			// C# DPS: sr WebUtility.UrlEncode'd (upper-case hex), order sr,sig,se,skn.
			name:     "C# DPS",
			token:    "SharedAccessSignature sr=" + csEnc(dpsRes) + "&sig=" + csEnc(handSig(t, key1, csEnc(dpsRes), se)) + "&se=" + ses + "&skn=registration",
			resource: dpsRes,
		},
		{
			// Lenient: sr sent encoded but the decoded resource was signed.
			name:     "signed decoded, sent encoded",
			token:    "SharedAccessSignature sr=" + cEnc(dpsRes) + "&sig=" + nodeEnc(handSig(t, key1, dpsRes, se)) + "&se=" + ses + "&skn=registration",
			resource: dpsRes,
		},
		{
			// Lenient: sr sent with lower-case hex, the canonical upper-case form was signed.
			name:     "signed re-encoded, sent lower-case",
			token:    "SharedAccessSignature sr=" + cEnc(hubRes) + "&sig=" + nodeEnc(handSig(t, key1, nodeEnc(hubRes), se)) + "&se=" + ses,
			resource: hubRes,
		},
		{
			// Node service SDK: sr=<host>, skn=iothubowner, order sr,sig,skn,se.
			name:     "node service policy",
			token:    "SharedAccessSignature sr=" + host + "&sig=" + nodeEnc(handSig(t, key1, host, se)) + "&skn=iothubowner&se=" + ses,
			resource: host + "/devices/dev1",
			policy:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.policy {
				_, err = sas.VerifyPolicy(tt.token, tt.resource, policies, sas.RightServiceConnect, now)
			} else {
				_, err = sas.VerifyDevice(tt.token, tt.resource, key1, key2, now)
			}
			if err != nil {
				t.Fatalf("%s: %v", auth.Redact(tt.token), err)
			}
			// The SDK's parser reads every official shape too.
			if _, err := auth.ParseToken(tt.token); err != nil {
				t.Fatalf("sdk ParseToken: %v", err)
			}
		})
	}
}
