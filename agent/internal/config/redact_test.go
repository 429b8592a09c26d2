package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRedaction(t *testing.T) {
	const (
		groupKey = "Z3JvdXAta2V5LXRoYXQtbXVzdC1uZXZlci1iZS1wcmludGVkIQ==" // "group-key-that-must-never-be-printed!"
		proxyPW  = "hunter2-proxy-password"
	)
	yaml := "provisioning:\n  id_scope: s\n  registration_id: dev1\n  attestation:\n    group_key: " + groupKey +
		"\nproxy:\n  url: http://op:" + proxyPW + "@proxy.lab:3128\n"
	c, _ := mustParse(t, testFile, yaml)
	derived := c.Provisioning.Attestation.DeviceKey.Reveal()
	if derived == "" {
		t.Fatal("no derived key")
	}
	secrets := []string{groupKey, proxyPW, derived}

	var logBuf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logBuf, nil))
	logger.Info("config", "cfg", c, "key", c.Provisioning.Attestation.DeviceKey, "att", c.Provisioning.Attestation)
	jsonAtt, err := json.Marshal(c.Provisioning.Attestation)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"Redacted":     c.Redacted(),
		"String":       c.String(),
		"%v":           fmt.Sprintf("%v", c),
		"%+v":          fmt.Sprintf("%+v", c),
		"%#v":          fmt.Sprintf("%#v", c),
		"%v value":     fmt.Sprintf("%v", *c),
		"proxy":        fmt.Sprintf("%v %+v", c.Proxy, c.Provisioning),
		"hub section":  fmt.Sprintf("%+v", struct{ P Proxy }{c.Proxy}),
		"%+v value":    fmt.Sprintf("%+v", *c),
		"attestation":  fmt.Sprintf("%+v", c.Provisioning.Attestation),
		"attestation#": fmt.Sprintf("%#v", c.Provisioning.Attestation),
		"secret %s":    fmt.Sprintf("%s %q %x", c.Provisioning.Attestation.GroupKey, c.Provisioning.Attestation.GroupKey, c.Provisioning.Attestation.GroupKey),
		"slog":         logBuf.String(),
		"json":         string(jsonAtt),
	}
	for name, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s leaks a secret:\n%s", name, out)
			}
		}
	}
	dump := c.Redacted()
	for _, want := range []string{"group_key: '[redacted]'", "url: http://op:xxxxx@proxy.lab:3128", "id_scope: s"} {
		if !strings.Contains(dump, want) {
			t.Errorf("dump lacks %q:\n%s", want, dump)
		}
	}
	if NewSecret("").String() != "" || NewSecret("x").String() != "[redacted]" {
		t.Errorf("Secret.String")
	}
}

// TestRedactedReparses checks the dump uses the file's own keys: parsing it
// back gives the same config once the masked secrets are put back.
func TestRedactedReparses(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "k", testKey, 0o600)
	yaml := valid + `  payload: {site: plant-7, n: 3}
hub:
  keepalive: 1m30s
  reprovision_method: ""
streams:
  targets: {ssh: 127.0.0.1:22, web: "[::1]:80"}
  idle_timeout: 0
resolve: [dps.lab:443=127.0.0.1:8443]
log:
  destination: file
  file: /var/log/porthole.log
  max_size: 64KiB
`
	c, _ := mustParse(t, filepath.Join(dir, "a.yaml"), yaml)
	dump := strings.Replace(c.Redacted(), "'[redacted]'", testKey, 1)
	c2, _ := mustParse(t, filepath.Join(dir, "b.yaml"), dump)
	c.lines, c2.lines, c2.File = nil, nil, c.File
	for i := range c2.Resolve {
		c2.Resolve[i].line, c2.Resolve[i].raw = c.Resolve[i].line, c.Resolve[i].raw
	}
	if !reflect.DeepEqual(c, c2) {
		t.Errorf("round trip differs:\n%s\nvs\n%s", c, c2)
	}
}

func TestChanges(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "device.key", testKey, 0o600)
	other := "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXkhISE="
	base := valid
	cases := []struct {
		name string
		yaml string
		want Change
	}{
		{"nothing", base, Change{}},
		{"same key moved to a file", strings.Replace(base, "symmetric_key: "+testKey, "symmetric_key_file: device.key", 1), Change{}},
		{"comment and order only", "# hello\n" + base, Change{}},
		{"stream policy and log level", base + "streams:\n  targets: {ssh: 127.0.0.1:2222}\n  max_concurrent: 2\n  idle_timeout: 5m\n  handshake_timeout: 10s\nlog:\n  level: debug\n",
			Change{Live: []string{"log.level", "streams.handshake_timeout", "streams.idle_timeout", "streams.max_concurrent", "streams.targets"}}},
		{"hub policy", base + "hub:\n  retry_cached_hub_for: 30m\n  reprovision_method: again\n",
			Change{Live: []string{"hub.reprovision_method", "hub.retry_cached_hub_for"}}},
		{"hub connection", base + "hub:\n  transport: mqtt-ws\n  keepalive: 60s\n  token_ttl: 2h\nproxy:\n  url: http://p:3128\nresolve: [a:1=127.0.0.1:1]\n",
			Change{Reconnect: []string{"hub.keepalive", "hub.token_ttl", "hub.transport", "proxy.url", "resolve"}}},
		{"identity", strings.Replace(base, testKey, other, 1) + "  transport: mqtt\n  global_endpoint: dps.lab\n  payload: {a: 1}\n",
			Change{Reprovision: []string{"provisioning.attestation.symmetric_key", "provisioning.global_endpoint", "provisioning.payload", "provisioning.transport"}}},
		{"registration id and scope", strings.Replace(strings.Replace(base, "dev1", "dev2", 1), "0ne00012345", "0ne00099999", 1),
			Change{Reprovision: []string{"provisioning.id_scope", "provisioning.registration_id"}}},
		{"group key instead of the device key", strings.Replace(base, "symmetric_key:", "group_key:", 1),
			Change{Reprovision: []string{"provisioning.attestation.symmetric_key"}}},
		{"restart", base + "state_dir: /data/porthole\nlog:\n  format: json\n  destination: file\n  file: /x.log\n  max_size: 8KiB\n  max_files: 9\n",
			Change{Restart: []string{"log.destination", "log.file", "log.format", "log.max_files", "log.max_size", "state_dir"}}},
	}
	old, _ := mustParse(t, filepath.Join(dir, "agent.yaml"), base)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc, _ := mustParse(t, filepath.Join(dir, "agent.yaml"), tc.yaml)
			got := Changes(old, nc)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %s\nwant %s", got, tc.want)
			}
			if strings.Contains(got.String(), testKey) || strings.Contains(got.String(), other) {
				t.Errorf("String leaks a key: %s", got)
			}
		})
	}
	ch := Changes(old, mustParseNoWarn(t, dir, base+"log:\n  level: warn\n"))
	if !ch.LiveOnly() || ch.NeedsReconnect() || ch.NeedsReprovision() || ch.NeedsRestart() || ch.None() {
		t.Errorf("log level change: %+v", ch)
	}
	ch = Changes(old, mustParseNoWarn(t, dir, strings.Replace(base, "dev1", "dev9", 1)))
	if ch.LiveOnly() || !ch.NeedsReconnect() || !ch.NeedsReprovision() {
		t.Errorf("identity change: %+v", ch)
	}
	if s := (Change{Live: []string{"a"}, Restart: []string{"b"}}).String(); s != "live: a; restart: b" {
		t.Errorf("String: %q", s)
	}
	if s := (Change{}).String(); s != "no changes" {
		t.Errorf("String: %q", s)
	}
}

func TestChangesCertAndCA(t *testing.T) {
	dir := t.TempDir()
	newCert(t, dir, "dev", "dev-1")
	newCert(t, dir, "ca1", "ca one")
	newCert(t, dir, "ca2", "ca two")
	yaml := "provisioning:\n  id_scope: s\n  attestation:\n    type: x509\n    cert_file: dev.pem\n    key_file: dev.key\nca_file: ca1.pem\n"
	old := mustParseNoWarn(t, dir, yaml)
	same := mustParseNoWarn(t, dir, yaml)
	if ch := Changes(old, same); !ch.None() {
		t.Errorf("unchanged files: %s", ch)
	}
	// Re-issue the certificate under the same file names.
	newCert(t, dir, "dev", "dev-1")
	newCert(t, dir, "ca1", "ca one")
	renewed := mustParseNoWarn(t, dir, yaml)
	want := Change{Reconnect: []string{"ca_file"}, Reprovision: []string{"provisioning.attestation.cert_file"}}
	if ch := Changes(old, renewed); !reflect.DeepEqual(ch, want) {
		t.Errorf("renewed files: %s, want %s", ch, want)
	}
}

func mustParseNoWarn(t *testing.T, dir, yaml string) *Config {
	t.Helper()
	c, _ := mustParse(t, filepath.Join(dir, "agent.yaml"), yaml)
	return c
}

func TestParseSize(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"4096", 4096, true},
		{"512KiB", 512 << 10, true},
		{"1MiB", 1 << 20, true},
		{"1 MiB", 1 << 20, true},
		{"1mib", 1 << 20, true},
		{"64KB", 64000, true},
		{"2M", 2 << 20, true},
		{"1GiB", 1 << 30, true},
		{"10B", 10, true},
		{"", 0, false},
		{"MiB", 0, false},
		{"1.5MiB", 0, false},
		{"-1KiB", 0, false},
		{"1TiB", 0, false},
		{"99999999999999999999", 0, false},
		{"9999999999GiB", 0, false},
	}
	for _, tc := range cases {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	for _, n := range []int64{0, 1, 1000, 1024, 512 << 10, 1 << 20, 3 << 30} {
		if got, err := ParseSize(FormatSize(n)); err != nil || got != n {
			t.Errorf("round trip %d: %q → %d, %v", n, FormatSize(n), got, err)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"4096", "512KiB", "1 MiB", "64KB", "1.5MiB", "", "9999999999GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
			t.Fatalf("FormatSize(%d) = %q does not parse back (%d, %v)", n, FormatSize(n), back, err)
		}
	})
}

// FuzzParse: no panic; every error raised while decoding a node carries a
// line; a config that parses validates and its dump parses back without
// unknown keys.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"agent.yaml", "agent.full.yaml"} {
		if b, err := os.ReadFile(filepath.Join("..", "..", "..", "configs", name)); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		valid,
		valid + "hub: {keepalive: 30, transport: x}\nstreams: {targets: {ssh: 1}}\n",
		valid + "  payload: {a: [1, {b: .nan}], c: &x 1, d: *x}\n",
		valid + "resolve: [a, b=c, 'a:1=1.2.3.4:5']\n",
		"provisioning:\n  id_scope: [\n",
		"- a\n- b\n",
		"---\n---\n",
		"a: &a [*a]\n",
		"<<: {a: 1}\n",
		"? [a]\n: 1\n",
		"log: {max_size: 1TiB, max_files: 0x7fffffffffffffff}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A name in an empty directory keeps relative paths from reading
		// anything real.
		name := filepath.Join(os.DevNull+"-nonexistent", "agent.yaml")
		done := make(chan struct{})
		var c *Config
		var err error
		go func() {
			defer close(done)
			c, _, err = Parse(name, data)
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("Parse hung on %q", data)
		}
		if err != nil {
			for _, fe := range FieldErrors(err) {
				if fe.positional && fe.Line <= 0 {
					t.Fatalf("positional error without a line: %v", fe)
				}
				if fe.File != name {
					t.Fatalf("error names %q: %v", fe.File, fe)
				}
			}
			if c != nil {
				t.Fatalf("config returned with an error")
			}
			return
		}
		if verr := c.Validate(); verr != nil {
			t.Fatalf("parsed config does not validate: %v", verr)
		}
		_, _, err = Parse(name, []byte(c.Redacted()))
		for _, fe := range FieldErrors(err) {
			if fe.positional {
				t.Fatalf("dump does not decode cleanly: %v\n%s", fe, c.Redacted())
			}
		}
	})
}
