package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, name, yaml string) (*Config, []Warning) {
	t.Helper()
	c, w, err := Parse(name, []byte(yaml))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c, w
}

func TestDefaults(t *testing.T) {
	c, w := mustParse(t, testFile, valid)
	if len(w) != 0 {
		t.Errorf("warnings: %v", w)
	}
	want := Default()
	want.File = testFile
	want.Provisioning.IDScope = "0ne00012345"
	want.Provisioning.RegistrationID = "dev1"
	want.Provisioning.Attestation.SymmetricKey = NewSecret(testKey)
	want.Provisioning.Attestation.DeviceKey = NewSecret(testKey)
	// Compare everything but the bookkeeping.
	c.lines, want.lines = nil, nil
	c.dir, want.dir = "", ""
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got\n%s\nwant\n%s", c.Redacted(), want.Redacted())
	}
	// Spot-check the documented defaults.
	checks := []struct {
		name      string
		got, want any
	}{
		{"global_endpoint", c.Provisioning.GlobalEndpoint, "global.azure-devices-provisioning.net"},
		{"dps transport", c.Provisioning.Transport, TransportHTTPS},
		{"attestation type", c.Provisioning.Attestation.Type, AttestSymmetricKey},
		{"hub transport", c.Hub.Transport, TransportMQTT},
		{"keepalive", c.Hub.Keepalive, 240 * time.Second},
		{"retry_cached_hub_for", c.Hub.RetryCachedHubFor, 15 * time.Minute},
		{"token_ttl", c.Hub.TokenTTL, time.Hour},
		{"reprovision_method", c.Hub.ReprovisionMethod, "reprovision"},
		{"proxy", c.Proxy.URL == nil, true},
		{"targets", c.Streams.Targets, map[string]string{"ssh": "127.0.0.1:22"}},
		{"max_concurrent", c.Streams.MaxConcurrent, 8},
		{"idle_timeout", c.Streams.IdleTimeout, 30 * time.Minute},
		{"handshake_timeout", c.Streams.HandshakeTimeout, 60 * time.Second},
		{"state_dir", c.StateDir, "/var/lib/porthole"},
		{"ca_file", c.CAFile, ""},
		{"root CAs", c.RootCAs == nil, true},
		{"log level", c.Log.Level, LevelInfo},
		{"log format", c.Log.Format, LogText},
		{"log destination", c.Log.Destination, LogStderr},
		{"log max_size", c.Log.MaxSize, int64(1 << 20)},
		{"log max_files", c.Log.MaxFiles, 3},
		{"payload", c.Provisioning.Payload == nil, true},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestOverrides(t *testing.T) {
	yaml := valid + `  global_endpoint: dps.lab:8443
  transport: mqtt-ws
  payload:
    site: plant-7
    floors: [1, 2]
    ratio: 0.5
    "on": true
    none: ~
    when: 2024-01-02
hub:
  transport: mqtt-ws
  keepalive: 90s
  retry_cached_hub_for: 0
  token_ttl: 90m
  reprovision_method: ""
proxy:
  url: http://user:pw@proxy.lab:3128
streams:
  targets:
    web: localhost:8080
  max_concurrent: 0x10
  idle_timeout: 0
  handshake_timeout: 1m30s
state_dir: state
resolve:
  - dps.lab:8443=127.0.0.1:18443
  - hub.lab:8883=[::1]:18883
log:
  level: debug
  format: json
  destination: file
  file: log/agent.log
  max_size: 512KiB
  max_files: 5
`
	c, _ := mustParse(t, "/etc/porthole/agent.yaml", yaml)
	p := c.Provisioning
	if p.GlobalEndpoint != "dps.lab:8443" || p.Transport != TransportMQTTWS {
		t.Errorf("provisioning: %+v", p)
	}
	var payload map[string]any
	if err := json.Unmarshal(p.Payload, &payload); err != nil {
		t.Fatal(err)
	}
	wantPayload := map[string]any{"site": "plant-7", "floors": []any{1.0, 2.0}, "ratio": 0.5, "on": true, "none": nil, "when": "2024-01-02"}
	if !reflect.DeepEqual(payload, wantPayload) {
		t.Errorf("payload = %v, want %v", payload, wantPayload)
	}
	if c.Hub != (Hub{Transport: TransportMQTTWS, Keepalive: 90 * time.Second, RetryCachedHubFor: 0, TokenTTL: 90 * time.Minute, ReprovisionMethod: ""}) {
		t.Errorf("hub: %+v", c.Hub)
	}
	if c.Proxy.URL == nil || c.Proxy.URL.Host != "proxy.lab:3128" || c.Proxy.URL.User.Username() != "user" {
		t.Errorf("proxy: %v", c.Proxy.URL)
	}
	// An explicit targets map replaces the default one.
	if !reflect.DeepEqual(c.Streams.Targets, map[string]string{"web": "localhost:8080"}) {
		t.Errorf("targets: %v", c.Streams.Targets)
	}
	if c.Streams.MaxConcurrent != 16 || c.Streams.IdleTimeout != 0 || c.Streams.HandshakeTimeout != 90*time.Second {
		t.Errorf("streams: %+v", c.Streams)
	}
	// Relative paths resolve against the config file's directory.
	if c.StateDir != "/etc/porthole/state" || c.Log.File != "/etc/porthole/log/agent.log" {
		t.Errorf("paths: state_dir=%q log.file=%q", c.StateDir, c.Log.File)
	}
	if c.Log != (Log{Level: LevelDebug, Format: LogJSON, Destination: LogFile, File: "/etc/porthole/log/agent.log", MaxSize: 512 << 10, MaxFiles: 5}) {
		t.Errorf("log: %+v", c.Log)
	}
	dial := []struct{ in, want string }{
		{"dps.lab:8443", "127.0.0.1:18443"},
		{"DPS.LAB:8443", "127.0.0.1:18443"},
		{"hub.lab:8883", "[::1]:18883"},
		{"hub.lab:443", "hub.lab:443"},
	}
	for _, d := range dial {
		if got := c.DialAddr(d.in); got != d.want {
			t.Errorf("DialAddr(%q) = %q, want %q", d.in, got, d.want)
		}
	}
	if c.Log.Level.Slog().String() != "DEBUG" {
		t.Errorf("slog level %v", c.Log.Level.Slog())
	}
}

func TestNullsKeepDefaults(t *testing.T) {
	c, _ := mustParse(t, testFile, valid+"hub:\nstreams:\n  targets:\n  max_concurrent: ~\nlog:\n  level:\n")
	if c.Hub.Keepalive != DefaultKeepalive || c.Streams.MaxConcurrent != DefaultMaxConcurrent ||
		!reflect.DeepEqual(c.Streams.Targets, DefaultTargets()) || c.Log.Level != LevelInfo {
		t.Errorf("nulls changed defaults:\n%s", c)
	}
}

func TestEmptyFile(t *testing.T) {
	for _, data := range []string{"", "\n# only a comment\n", "~\n"} {
		_, _, err := Parse(testFile, []byte(data))
		want := []string{
			testFile + ": provisioning.attestation: no key configured; expected one of symmetric_key, symmetric_key_file, group_key, group_key_file",
			testFile + ": provisioning.id_scope: missing; expected the ID scope from the DPS overview page, like 0ne00012345",
			testFile + ": provisioning.registration_id: missing; expected this device's registration ID, like sn-0042 (for group keys, any unique name)",
		}
		if got := errLines(err); !reflect.DeepEqual(got, want) {
			t.Errorf("%q:\n got %q\nwant %q", data, got, want)
		}
	}
}

func TestAliasesAndBomb(t *testing.T) {
	c, _ := mustParse(t, testFile, valid+"streams:\n  targets:\n    ssh: &a 127.0.0.1:22\n    ssh2: *a\n")
	if c.Streams.Targets["ssh2"] != "127.0.0.1:22" {
		t.Errorf("alias not followed: %v", c.Streams.Targets)
	}
	// Each level multiplies the payload by 10: 10^9 nodes if expanded.
	var b strings.Builder
	b.WriteString(valid + "  payload:\n    l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		prev := "*l" + string(rune('0'+i-1))
		b.WriteString("    l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [" + strings.Repeat(prev+", ", 9) + prev + "]\n")
	}
	start := time.Now()
	_, _, err := Parse(testFile, []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "the file expands to too many values") {
		t.Errorf("bomb accepted or wrong error: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("bomb took %s", d)
	}
}

func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask may have narrowed it
		t.Fatal(err)
	}
	return p
}

func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	writeFile(t, dir, "device.key", testKey+"\n", 0o600)
	writeFile(t, dir, "loose.key", testKey, 0o644)
	writeFile(t, dir, "group.key", "  "+testKey+"\n\n", 0o600)
	writeFile(t, dir, "empty.key", "\n", 0o600)
	writeFile(t, dir, "garbage.key", "this is not base64\n", 0o600)
	const head = "provisioning:\n  id_scope: s\n  registration_id: sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6\n  attestation:\n"
	// Device key derived from testKey as group key, computed with openssl:
	//   openssl dgst -sha256 -mac HMAC -macopt hexkey:<hex of group key> -binary | base64
	const derived = "u7phgtgsae/KQ1Dk+R/CETfOi/YUNHWzHRgW2yD3vJA="
	cases := []struct {
		name     string
		att      string
		key      string
		warnings []string
		errs     []string
	}{
		{name: "inline key", att: "    symmetric_key: " + testKey + "\n", key: testKey},
		{name: "key file (relative)", att: "    symmetric_key_file: device.key\n", key: testKey},
		{name: "key file readable by others", att: "    symmetric_key_file: loose.key\n", key: testKey,
			warnings: []string{cfg + ":5: provisioning.attestation.symmetric_key_file: " + dir + "/loose.key can be read by other users (mode 0644); chmod 600 it"}},
		{name: "inline group key", att: "    group_key: " + testKey + "\n", key: derived},
		{name: "group key file", att: "    group_key_file: " + dir + "/group.key\n", key: derived},
		{name: "missing file", att: "    symmetric_key_file: nope.key\n",
			errs: []string{cfg + ":5: provisioning.attestation.symmetric_key_file: cannot read it: open " + dir + "/nope.key: no such file or directory; expected a readable file holding the device key"}},
		{name: "directory", att: "    symmetric_key_file: .\n",
			errs: []string{cfg + ":5: provisioning.attestation.symmetric_key_file: cannot read it: " + dir + " is not a regular file; expected a readable file holding the device key"}},
		{name: "empty file", att: "    group_key_file: empty.key\n",
			errs: []string{cfg + ":5: provisioning.attestation.group_key_file: " + dir + "/empty.key is empty; expected a file holding the enrollment group key (base64)"}},
		{name: "garbage file", att: "    symmetric_key_file: garbage.key\n",
			errs: []string{cfg + ":5: provisioning.attestation.symmetric_key_file: " + dir + "/garbage.key does not hold valid base64; expected a file holding the device key exactly as shown in the Azure portal"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, w, err := Parse(cfg, []byte(head+tc.att))
			if got := errLines(err); !reflect.DeepEqual(got, tc.errs) {
				t.Fatalf("errors:\n got %q\nwant %q", got, tc.errs)
			}
			var ws []string
			for _, x := range w {
				ws = append(ws, x.String())
			}
			if !reflect.DeepEqual(ws, tc.warnings) {
				t.Errorf("warnings:\n got %q\nwant %q", ws, tc.warnings)
			}
			if err == nil && c.Provisioning.Attestation.DeviceKey.Reveal() != tc.key {
				t.Errorf("device key mismatch")
			}
			if err != nil && (strings.Contains(err.Error(), testKey) || strings.Contains(err.Error(), "this is not base64")) {
				t.Errorf("error leaks file content: %v", err)
			}
		})
	}
}

func TestDeriveDeviceKey(t *testing.T) {
	got, err := DeriveDeviceKey(NewSecret(testKey), "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")
	if err != nil || got.Reveal() != "u7phgtgsae/KQ1Dk+R/CETfOi/YUNHWzHRgW2yD3vJA=" {
		t.Errorf("got %q, %v", got.Reveal(), err)
	}
	for _, tc := range []struct{ key, id string }{{"%%%", "x"}, {testKey, ""}} {
		if _, err := DeriveDeviceKey(NewSecret(tc.key), tc.id); !errors.Is(err, ErrDeriveKey) || strings.Contains(err.Error(), tc.key) {
			t.Errorf("DeriveDeviceKey(%q): %v", tc.id, err)
		}
	}
}

func TestLoadWarnsAboutInlineSecrets(t *testing.T) {
	dir := t.TempDir()
	withProxy := valid + "proxy:\n  url: http://u:pw@proxy:3128\n"
	open := writeFile(t, dir, "open.yaml", withProxy, 0o644)
	closed := writeFile(t, dir, "closed.yaml", withProxy, 0o600)
	noSecret := writeFile(t, dir, "nosecret.yaml", "provisioning:\n  id_scope: s\n  registration_id: r\n  attestation:\n    symmetric_key_file: k\n", 0o644)
	writeFile(t, dir, "k", testKey, 0o600)

	_, w, err := Load(open)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		open + ":5: provisioning.attestation.symmetric_key: a secret sits in a file every user can read (mode 0644); chmod 600 the config or move the secret to a *_file",
		open + ":7: proxy.url: a secret sits in a file every user can read (mode 0644); chmod 600 the config or move the secret to a *_file",
	}
	var got []string
	for _, x := range w {
		got = append(got, x.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n got %q\nwant %q", got, want)
	}
	for _, p := range []string{closed, noSecret} {
		if _, w, err := Load(p); err != nil || len(w) != 0 {
			t.Errorf("%s: warnings %v, err %v", p, w, err)
		}
	}
	_, _, err = Load(filepath.Join(dir, "missing.yaml"))
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "config: "+filepath.Join(dir, "missing.yaml")+": ") {
		t.Errorf("missing file: %v", err)
	}
}

// newCert writes a self-signed certificate with the given CN and its key.
func newCert(t *testing.T, dir, name, cn string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Unix(0, 0),
		NotAfter:              time.Unix(4102444800, 0), // 2100
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath = writeFile(t, dir, name+".pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), 0o644)
	keyPath = writeFile(t, dir, name+".key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})), 0o600)
	return certPath, keyPath
}

func TestX509(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	cert, key := newCert(t, dir, "dev", "dev-42")
	noCN, noCNKey := newCert(t, dir, "nocn", "")
	_, otherKey := newCert(t, dir, "other", "other")
	looseKey := writeFile(t, dir, "loose.key", mustRead(t, key), 0o640)
	head := "provisioning:\n  id_scope: s\n"
	cases := []struct {
		name     string
		yaml     string
		regID    string
		warnings []string
		errs     []string
	}{
		{name: "registration id from CN", yaml: head + "  attestation:\n    type: x509\n    cert_file: dev.pem\n    key_file: dev.key\n", regID: "dev-42"},
		{name: "registration id equal to CN", yaml: head + "  registration_id: dev-42\n  attestation:\n    type: x509\n    cert_file: " + cert + "\n    key_file: " + key + "\n", regID: "dev-42"},
		{name: "registration id differs", yaml: head + "  registration_id: dev-43\n  attestation:\n    type: x509\n    cert_file: dev.pem\n    key_file: dev.key\n",
			errs: []string{cfg + `:3: provisioning.registration_id: "dev-43" differs from the certificate's common name "dev-42"; expected them equal (DPS uses the CN as the registration ID), or registration_id left out`}},
		{name: "no CN", yaml: head + "  attestation:\n    type: x509\n    cert_file: " + noCN + "\n    key_file: " + noCNKey + "\n",
			errs: []string{cfg + ":5: provisioning.attestation.cert_file: the certificate has no subject common name; expected CN = the registration ID (DPS uses it as the registration ID)"}},
		{name: "key does not match", yaml: head + "  attestation:\n    type: x509\n    cert_file: dev.pem\n    key_file: " + otherKey + "\n",
			errs: []string{cfg + ":5: provisioning.attestation.cert_file: cannot use the certificate and key: tls: private key does not match public key; expected a PEM certificate and its matching PEM private key"}},
		{name: "cert is not PEM", yaml: head + "  attestation:\n    type: x509\n    cert_file: dev.key\n    key_file: dev.key\n",
			errs: []string{cfg + ":5: provisioning.attestation.cert_file: cannot use the certificate and key: tls: failed to find certificate PEM data in certificate input, but did find a private key; PEM inputs may have been switched; expected a PEM certificate and its matching PEM private key"}},
		{name: "missing key file", yaml: head + "  attestation:\n    type: x509\n    cert_file: dev.pem\n    key_file: gone.key\n",
			errs: []string{cfg + ":6: provisioning.attestation.key_file: cannot read it: open " + dir + "/gone.key: no such file or directory; expected the device private key (PEM)"}},
		{name: "key readable by group", yaml: head + "  attestation:\n    type: x509\n    cert_file: dev.pem\n    key_file: loose.key\n", regID: "dev-42",
			warnings: []string{cfg + ":6: provisioning.attestation.key_file: " + looseKey + " can be read by other users (mode 0640); chmod 600 it"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, w, err := Parse(cfg, []byte(tc.yaml))
			if got := errLines(err); !reflect.DeepEqual(got, tc.errs) {
				t.Fatalf("errors:\n got %q\nwant %q", got, tc.errs)
			}
			var ws []string
			for _, x := range w {
				ws = append(ws, x.String())
			}
			if !reflect.DeepEqual(ws, tc.warnings) {
				t.Errorf("warnings:\n got %q\nwant %q", ws, tc.warnings)
			}
			if err != nil {
				return
			}
			a := c.Provisioning.Attestation
			if c.Provisioning.RegistrationID != tc.regID || a.Certificate == nil || a.Certificate.Leaf.Subject.CommonName != "dev-42" {
				t.Errorf("registration id %q, cert %v", c.Provisioning.RegistrationID, a.Certificate)
			}
			if strings.Contains(c.Redacted(), "PRIVATE") {
				t.Errorf("dump contains key material")
			}
		})
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCAFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	ca, _ := newCert(t, dir, "ca", "porthole test CA")
	writeFile(t, dir, "junk.pem", "not a certificate\n", 0o644)

	c, _ := mustParse(t, cfg, valid+"ca_file: ca.pem\n")
	if c.RootCAs == nil || c.CAFile != ca {
		t.Fatalf("RootCAs not loaded (ca_file %q)", c.CAFile)
	}
	block, _ := pem.Decode([]byte(mustRead(t, ca)))
	leaf, _ := x509.ParseCertificate(block.Bytes)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.RootCAs}); err != nil {
		t.Errorf("CA not trusted by RootCAs: %v", err)
	}

	cases := []struct{ file, want string }{
		{"junk.pem", cfg + ":6: ca_file: " + dir + "/junk.pem holds no PEM certificates; expected one or more -----BEGIN CERTIFICATE----- blocks"},
		{"gone.pem", cfg + ":6: ca_file: cannot read it: open " + dir + "/gone.pem: no such file or directory; expected a readable PEM file of CA certificates"},
	}
	for _, tc := range cases {
		_, _, err := Parse(cfg, []byte(valid+"ca_file: "+tc.file+"\n"))
		if got := errLines(err); !reflect.DeepEqual(got, []string{tc.want}) {
			t.Errorf("%s:\n got %q\nwant %q", tc.file, got, tc.want)
		}
	}
}

func TestSamplesValidate(t *testing.T) {
	for _, name := range []string{"agent.yaml", "agent.full.yaml"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "..", "..", "configs", name))
			if err != nil {
				t.Fatal(err)
			}
			c, w, err := Parse(name, data)
			if err != nil {
				t.Fatalf("sample does not validate:\n%v", err)
			}
			if len(w) != 0 {
				t.Errorf("warnings: %v", w)
			}
			if c.Provisioning.Attestation.DeviceKey.IsZero() {
				t.Errorf("no device key")
			}
			if name == "agent.full.yaml" {
				// The full sample shows every default: it must equal Default()
				// apart from the identity.
				d := Default()
				d.File, d.lines, c.lines, d.dir, c.dir = c.File, nil, nil, "", ""
				d.Provisioning.IDScope, d.Provisioning.RegistrationID = c.Provisioning.IDScope, c.Provisioning.RegistrationID
				d.Provisioning.Attestation = c.Provisioning.Attestation
				if !reflect.DeepEqual(c, d) {
					t.Errorf("full sample differs from Default():\n%s\nvs\n%s", c, d)
				}
			}
		})
	}
}

// TestFullSampleMentionsEveryKey keeps the full sample complete: every key
// the decoder knows appears in it (commented out or not).
func TestFullSampleMentionsEveryKey(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "configs", "agent.full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range allFields {
		leaf := f[strings.LastIndexByte(f, '.')+1:]
		if !strings.Contains(string(data), leaf+":") {
			t.Errorf("agent.full.yaml does not mention %s", f)
		}
	}
}

// TestBuiltInCode covers configs built in Go (tests, hubsim helpers):
// Validate and LoadSecrets work without a file and without line numbers.
func TestBuiltInCode(t *testing.T) {
	c := Default()
	c.Provisioning.IDScope = "0ne00012345"
	c.Provisioning.RegistrationID = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
	c.Provisioning.Attestation.GroupKey = NewSecret(testKey)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if w, err := c.LoadSecrets(); err != nil || len(w) != 0 {
		t.Fatalf("LoadSecrets: %v %v", w, err)
	}
	if c.Provisioning.Attestation.DeviceKey.Reveal() != "u7phgtgsae/KQ1Dk+R/CETfOi/YUNHWzHRgW2yD3vJA=" {
		t.Errorf("device key not derived")
	}
	c.Streams.Targets = map[string]string{"ssh": ""}
	c.Resolve = []Resolve{{From: "dps:443", To: "localhost:1"}}
	c.Log.Level = "loud"
	want := []string{ // no lines: sorted by field
		`log.level: "loud" is not a level; expected debug, info, warn or error`,
		`resolve: "dps:443=localhost:1": the right side is not ip:port; expected host:port=ip:port, like global.azure-devices-provisioning.net:443=127.0.0.1:8443`,
		"streams.targets.ssh: has no address; expected host:port, like 127.0.0.1:22",
	}
	if got := errLines(c.Validate()); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	c.Streams.Targets = nil
	if got := errLines(c.Validate()); !reflect.DeepEqual(got[2], "streams.targets: is empty; expected at least one stream, like ssh: 127.0.0.1:22") {
		t.Errorf("got %q", got)
	}
}
