package config

import (
	"strings"
	"testing"
	"time"
)

const (
	testFile = "/etc/porthole/agent.yaml"
	// testKey is base64 of "REPLACE-ME-WITH-THE-DEVICE-KEY!!".
	testKey = "UkVQTEFDRS1NRS1XSVRILVRIRS1ERVZJQ0UtS0VZISE="
)

// valid is a complete config on lines 1-5; cases append sections from line 6.
const valid = `provisioning:
  id_scope: 0ne00012345
  registration_id: dev1
  attestation:
    symmetric_key: ` + testKey + `
`

func errLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// TestErrors lists every error the decoder and Validate can report for a
// hand-edited file, with the exact text a technician sees.
func TestErrors(t *testing.T) {
	const f = testFile
	cases := []struct {
		name string
		yaml string
		want []string
	}{
		// --- syntax and structure ---
		// yaml.v3 itself reports the line before the "[" here (its context mark is 0-based).
		{"syntax error", "provisioning:\n  id_scope: [0ne\n", []string{
			f + ":2: syntax error: did not find expected ',' or ']'; expected valid YAML (check indentation and quoting)"}},
		{"tab indentation", "provisioning:\n\tid_scope: x\n", []string{
			f + ":2: syntax error: found character that cannot start any token; expected valid YAML (check indentation and quoting)"}},
		{"root is a list", "- provisioning\n", []string{
			f + ":1: got a list; expected a mapping of keys, like provisioning: …"}},
		{"root is a scalar", "hello\n", []string{
			f + `:1: got "hello"; expected a mapping of keys, like provisioning: …`}},
		{"two documents", valid + "---\nhub: {}\n", []string{
			f + `:6: a second YAML document starts here; expected one document (remove the extra "---")`}},
		{"bad second document", valid + "---\nhub: [\n", []string{
			f + ":7: syntax error: did not find expected node content; expected valid YAML (check indentation and quoting)"}},
		{"unknown key with suggestion", "provisioning:\n  id_scop: 0ne00012345\n  registration_id: dev1\n  attestation:\n    symmetric_key: " + testKey + "\n", []string{
			f + ":1: provisioning.id_scope: missing; expected the ID scope from the DPS overview page, like 0ne00012345",
			f + `:2: provisioning.id_scop: unknown key; did you mean "id_scope"?`}},
		{"unknown key without suggestion", valid + "hub:\n  colour: blue\n", []string{
			f + ":7: hub.colour: unknown key; expected one of transport, keepalive, retry_cached_hub_for, token_ttl, reprovision_method, lookup_first"}},
		{"lookup_first not a bool", valid + "hub:\n  lookup_first: sometimes\n", []string{
			f + ":7: hub.lookup_first: \"sometimes\" is not true or false; expected true or false"}},
		{"key in the wrong section", valid + "keepalive: 30s\n", []string{
			f + `:6: keepalive: unknown key; did you mean hub.keepalive? ("keepalive" belongs under hub)`}},
		{"top-level key nested", valid + "hub:\n  state_dir: /x\n", []string{
			f + `:7: hub.state_dir: unknown key; did you mean state_dir? ("state_dir" belongs at the top level)`}},
		{"misspelled section", valid + "streems:\n  max_concurrent: 2\n", []string{
			f + `:6: streems: unknown key; did you mean "streams"?`}},
		{"duplicate key", valid + "hub:\n  keepalive: 30s\n  keepalive: 60s\n", []string{
			f + ":8: hub.keepalive: duplicate key (first set on line 7); expected each key once"}},
		{"merge key", valid + "base: &b {keepalive: 30s}\n", []string{
			f + `:6: base: unknown key; expected one of provisioning, hub, proxy, streams, state_dir, ca_file, resolve, log, health, metrics`}},
		{"merge key used", valid + "hub:\n  <<: {keepalive: 30s}\n", []string{
			f + ":7: hub: YAML merge keys (<<) are not supported; expected each key written out"}},
		{"section is a scalar", valid + "hub: fast\n", []string{
			f + `:6: hub: got "fast"; expected a mapping of keys`}},
		{"string is a mapping", valid + "state_dir: {a: 1}\n", []string{
			f + ":6: state_dir: got a mapping; expected a single value"}},
		{"key is a list", valid + "[a]: 1\n", []string{
			f + ":6: a key is a list; expected plain key names"}},

		// --- provisioning ---
		{"no provisioning section", "hub: {}\n", []string{
			f + ": provisioning.attestation: no key configured; expected one of symmetric_key, symmetric_key_file, group_key, group_key_file",
			f + ": provisioning.id_scope: missing; expected the ID scope from the DPS overview page, like 0ne00012345",
			f + ": provisioning.registration_id: missing; expected this device's registration ID, like sn-0042 (for group keys, any unique name)"}},
		{"empty endpoint", valid + "  global_endpoint: \"\"\n", []string{
			f + ":6: provisioning.global_endpoint: is empty; expected a host name like global.azure-devices-provisioning.net"}},
		{"endpoint with scheme", valid + "  global_endpoint: https://dps.example\n", []string{
			f + `:6: provisioning.global_endpoint: "https://dps.example" includes a scheme; expected a host name like global.azure-devices-provisioning.net, optionally with :port`}},
		{"endpoint bad port", valid + "  global_endpoint: dps.example:99999\n", []string{
			f + `:6: provisioning.global_endpoint: "dps.example:99999" has a bad port; expected a host name like global.azure-devices-provisioning.net, optionally with :port`}},
		{"endpoint bad host", valid + "  global_endpoint: dps example\n", []string{
			f + `:6: provisioning.global_endpoint: "dps example" is not a host name; expected a host name like global.azure-devices-provisioning.net, optionally with :port`}},
		{"id scope bad characters", valid + "  id_scope: 0ne-0001\n", []string{
			f + ":6: provisioning.id_scope: duplicate key (first set on line 2); expected each key once"}},
		{"id scope with space", "provisioning:\n  id_scope: 0ne 0001\n  registration_id: dev1\n  attestation:\n    symmetric_key: " + testKey + "\n", []string{
			f + `:2: provisioning.id_scope: "0ne 0001" has characters other than letters and digits; expected the ID scope from the DPS overview page, like 0ne00012345`}},
		{"registration id bad character", "provisioning:\n  id_scope: s\n  registration_id: dev/1\n  attestation:\n    symmetric_key: " + testKey + "\n", []string{
			f + `:3: provisioning.registration_id: "dev/1" has a character DPS does not allow; expected letters, digits and - . _ : (at most 128, ending in a letter, digit or -)`}},
		{"registration id bad last character", "provisioning:\n  id_scope: s\n  registration_id: dev1.\n  attestation:\n    symmetric_key: " + testKey + "\n", []string{
			f + `:3: provisioning.registration_id: "dev1." ends with "."; expected letters, digits and - . _ : (at most 128, ending in a letter, digit or -)`}},
		{"registration id too long", "provisioning:\n  id_scope: s\n  registration_id: " + strings.Repeat("a", 129) + "\n  attestation:\n    symmetric_key: " + testKey + "\n", []string{
			f + `:3: provisioning.registration_id: is 129 characters long; expected letters, digits and - . _ : (at most 128, ending in a letter, digit or -)`}},
		{"provisioning transport", valid + "  transport: amqp\n", []string{
			f + `:6: provisioning.transport: "amqp" is not supported; expected one of https, mqtt, mqtt-ws`}},
		{"attestation type", valid + "    type: tpm\n", []string{
			f + `:6: provisioning.attestation.type: "tpm" is not supported; expected symmetric_key or x509`}},
		{"no key", "provisioning:\n  id_scope: s\n  registration_id: dev1\n  attestation:\n    type: symmetric_key\n", []string{
			f + ":4: provisioning.attestation: no key configured; expected one of symmetric_key, symmetric_key_file, group_key, group_key_file"}},
		{"two key sources", valid + "    group_key: " + testKey + "\n    symmetric_key_file: k\n", []string{
			f + ":6: provisioning.attestation.group_key: set together with symmetric_key; expected exactly one of symmetric_key, symmetric_key_file, group_key, group_key_file",
			f + ":7: provisioning.attestation.symmetric_key_file: set together with symmetric_key; expected exactly one of symmetric_key, symmetric_key_file, group_key, group_key_file",
			f + ":7: provisioning.attestation.symmetric_key_file: cannot read it: open /etc/porthole/k: no such file or directory; expected a readable file holding the device key"}},
		{"cert with symmetric key", valid + "    cert_file: d.pem\n    key_file: d.key\n", []string{
			f + ":6: provisioning.attestation.cert_file: is only used with type: x509; expected it removed, or type: x509",
			f + ":7: provisioning.attestation.key_file: is only used with type: x509; expected it removed, or type: x509"}},
		{"key not base64", "provisioning:\n  id_scope: s\n  registration_id: dev1\n  attestation:\n    symmetric_key: not-base64!\n", []string{
			f + ":5: provisioning.attestation.symmetric_key: is not valid base64; expected the device key exactly as shown in the Azure portal"}},
		{"group key not base64", "provisioning:\n  id_scope: s\n  registration_id: dev1\n  attestation:\n    group_key: abc\n", []string{
			f + ":5: provisioning.attestation.group_key: is not valid base64; expected the enrollment group key exactly as shown in the Azure portal"}},
		{"key is a list", "provisioning:\n  id_scope: s\n  registration_id: dev1\n  attestation:\n    symmetric_key: [a, b]\n", []string{
			f + ":4: provisioning.attestation: no key configured; expected one of symmetric_key, symmetric_key_file, group_key, group_key_file",
			f + ":5: provisioning.attestation.symmetric_key: got a list; expected the key as one base64 string"}},
		{"x509 without files", "provisioning:\n  id_scope: s\n  attestation:\n    type: x509\n", []string{
			f + ":3: provisioning.attestation.cert_file: missing; expected the device certificate (PEM) for type: x509",
			f + ":3: provisioning.attestation.key_file: missing; expected the device private key (PEM) for type: x509"}},
		{"x509 with symmetric key", valid + "    type: x509\n    cert_file: /nonexistent/c.pem\n    key_file: /nonexistent/k.pem\n", []string{
			f + ":5: provisioning.attestation.symmetric_key: is only used with type: symmetric_key; expected it removed, or type: symmetric_key",
			f + ":7: provisioning.attestation.cert_file: cannot read it: open /nonexistent/c.pem: no such file or directory; expected the device certificate (PEM)"}},
		{"payload not a mapping", valid + "  payload: [1, 2]\n", []string{
			f + ":6: provisioning.payload: got a list; expected a mapping (it is sent to DPS as a JSON object)"}},
		{"payload infinity", valid + "  payload: {x: .inf}\n", []string{
			f + `:6: provisioning.payload.x: ".inf" has no JSON form; expected a finite number (or quote it)`}},
		{"payload duplicate key", valid + "  payload: {a: 1, a: 2}\n", []string{
			f + ":6: provisioning.payload.a: duplicate key; expected each key once"}},
		{"payload complex key", valid + "  payload: {[a]: 1}\n", []string{
			f + ":6: provisioning.payload: a key is not a plain value; expected string keys"}},

		// --- hub ---
		{"hub transport", valid + "hub:\n  transport: https\n", []string{
			f + `:7: hub.transport: "https" is not supported; expected mqtt (port 8883) or mqtt-ws (port 443)`}},
		{"keepalive no unit", valid + "hub:\n  keepalive: 30\n", []string{
			f + `:7: hub.keepalive: "30" has no unit; expected a duration like 4m (units: s, m, h)`}},
		{"keepalive not a duration", valid + "hub:\n  keepalive: soon\n", []string{
			f + `:7: hub.keepalive: "soon" is not a duration; expected a duration like 4m (units: s, m, h)`}},
		{"keepalive a list", valid + "hub:\n  keepalive: [1]\n", []string{
			f + `:7: hub.keepalive: got a list; expected a duration like 4m`}},
		{"keepalive too short", valid + "hub:\n  keepalive: 1s\n", []string{
			f + ":7: hub.keepalive: 1s is out of range; expected between 5s and 19m37s (IoT Hub's limit)"}},
		{"keepalive too long", valid + "hub:\n  keepalive: 30m\n", []string{
			f + ":7: hub.keepalive: 30m is out of range; expected between 5s and 19m37s (IoT Hub's limit)"}},
		{"token too short", valid + "hub:\n  token_ttl: 10s\n", []string{
			f + ":7: hub.token_ttl: 10s is out of range; expected between 1m and 24h, like 1h"}},
		{"retry negative", valid + "hub:\n  retry_cached_hub_for: -1m\n", []string{
			f + ":7: hub.retry_cached_hub_for: -1m is negative; expected 0 or more, like 15m"}},
		{"reprovision method", valid + "hub:\n  reprovision_method: re/provision\n", []string{
			f + `:7: hub.reprovision_method: "re/provision" has characters a method name cannot have; expected letters, digits, "_", "." or "-" (or "" to disable)`}},

		// --- proxy ---
		{"proxy without scheme", valid + "proxy:\n  url: user:pw@proxy:3128\n", []string{
			f + ":7: proxy.url: has no scheme; expected http://host:port or http://user:password@host:port"}},
		{"proxy https", valid + "proxy:\n  url: https://proxy:3128\n", []string{
			f + `:7: proxy.url: "https" proxies are not supported; expected http://host:port or http://user:password@host:port`}},
		{"proxy socks", valid + "proxy:\n  url: socks5://proxy:1080\n", []string{
			f + `:7: proxy.url: "socks5" proxies are not supported; expected http://host:port or http://user:password@host:port`}},
		{"proxy no host", valid + "proxy:\n  url: http://:3128\n", []string{
			f + ":7: proxy.url: has no host; expected http://host:port or http://user:password@host:port"}},
		{"proxy no port", valid + "proxy:\n  url: http://u:secret@proxy\n", []string{
			f + `:7: proxy.url: "http://u:xxxxx@proxy" has no port; expected http://host:port or http://user:password@host:port`}},
		{"proxy bad port", valid + "proxy:\n  url: http://proxy:0\n", []string{
			f + `:7: proxy.url: "http://proxy:0" has a bad port; expected http://host:port or http://user:password@host:port`}},
		{"proxy path", valid + "proxy:\n  url: http://proxy:3128/x\n", []string{
			f + `:7: proxy.url: "http://proxy:3128/x" has a path or query; expected http://host:port or http://user:password@host:port`}},
		{"proxy unparsable", valid + "proxy:\n  url: \"http://u:secret@[::1\"\n", []string{
			f + ":7: proxy.url: is not a valid URL; expected http://host:port or http://user:password@host:port"}},

		// --- streams ---
		{"target without port", valid + "streams:\n  targets:\n    ssh: 127.0.0.1\n", []string{
			f + `:8: streams.targets.ssh: "127.0.0.1" has no port; expected host:port, like 127.0.0.1:22`}},
		{"target bad port", valid + "streams:\n  targets:\n    ssh: 127.0.0.1:0\n", []string{
			f + `:8: streams.targets.ssh: "127.0.0.1:0" has a bad port; expected host:port, like 127.0.0.1:22`}},
		{"target no host", valid + "streams:\n  targets:\n    ssh: :22\n", []string{
			f + `:8: streams.targets.ssh: ":22" has no host; expected host:port, like 127.0.0.1:22`}},
		{"target too many colons", valid + "streams:\n  targets:\n    ssh: a:b:22\n", []string{
			f + `:8: streams.targets.ssh: "a:b:22" is not host:port; expected host:port, like 127.0.0.1:22`}},
		{"target bad host", valid + "streams:\n  targets:\n    ssh: a b:22\n", []string{
			f + `:8: streams.targets.ssh: "a b:22" is not a host name; expected host:port, like 127.0.0.1:22`}},
		{"target empty", valid + "streams:\n  targets:\n    ssh:\n", []string{
			f + ":8: streams.targets.ssh: has no address; expected host:port, like 127.0.0.1:22"}},
		// issue 11 finding 8: an empty string passed validate.
		{"target empty string", valid + "streams:\n  targets:\n    x: \"\"\n", []string{
			f + ":8: streams.targets.x: has no address; expected host:port, like 127.0.0.1:22"}},
		{"target empty string in flow mapping", valid + "streams:\n  targets: {x: ''}\n", []string{
			f + ":7: streams.targets.x: has no address; expected host:port, like 127.0.0.1:22"}},
		{"target a list", valid + "streams:\n  targets:\n    ssh: [a]\n", []string{
			f + ":8: streams.targets.ssh: got a list; expected a single value"}},
		{"target bad name", valid + "streams:\n  targets:\n    my ssh: 127.0.0.1:22\n", []string{
			f + `:8: streams.targets.my ssh: the stream name has characters other than letters, digits, "_", "." and "-"; expected a name like ssh`}},
		{"target duplicate", valid + "streams:\n  targets:\n    ssh: 127.0.0.1:22\n    ssh: 127.0.0.1:2222\n", []string{
			f + ":9: streams.targets.ssh: duplicate stream name; expected each name once"}},
		{"target name a list", valid + "streams:\n  targets:\n    [ssh]: 127.0.0.1:22\n", []string{
			f + ":8: streams.targets: a stream name is not a plain value; expected names like ssh"}},
		{"targets empty", valid + "streams:\n  targets: {}\n", []string{
			f + ":7: streams.targets: is empty; expected at least one stream, like ssh: 127.0.0.1:22"}},
		{"targets a list", valid + "streams:\n  targets: [ssh]\n", []string{
			f + ":7: streams.targets: got a list; expected a mapping of stream name to host:port, like ssh: 127.0.0.1:22"}},
		{"max concurrent word", valid + "streams:\n  max_concurrent: many\n", []string{
			f + `:7: streams.max_concurrent: "many" is not a whole number; expected a whole number like 8`}},
		{"max concurrent fraction", valid + "streams:\n  max_concurrent: 1.5\n", []string{
			f + `:7: streams.max_concurrent: "1.5" is not a whole number; expected a whole number like 8`}},
		{"max concurrent huge", valid + "streams:\n  max_concurrent: 99999999999\n", []string{
			f + `:7: streams.max_concurrent: "99999999999" is out of range; expected a whole number like 8`}},
		{"max concurrent zero", valid + "streams:\n  max_concurrent: 0\n", []string{
			f + ":7: streams.max_concurrent: 0 is out of range; expected 1 to 1024"}},
		{"mux window too small", valid + "streams:\n  mux:\n    window: 64KiB\n", []string{
			f + ":8: streams.mux.window: 65536 bytes is out of range; expected 256KiB to 16MiB"}},
		{"mux window not a size", valid + "streams:\n  mux:\n    window: big\n", []string{
			f + `:8: streams.mux.window: "big" is not a size; expected a size like 512KiB (units: KiB, MiB)`}},
		{"idle timeout negative", valid + "streams:\n  idle_timeout: -5m\n", []string{
			f + ":7: streams.idle_timeout: -5m is negative; expected 0 (no limit) or a duration like 30m"}},
		{"handshake timeout zero", valid + "streams:\n  handshake_timeout: 0\n", []string{
			f + ":7: streams.handshake_timeout: 0s is not positive; expected a duration like 60s"}},

		// --- top level ---
		{"state dir empty", valid + "state_dir: \"\"\n", []string{
			f + ":6: state_dir: is empty; expected a directory like /var/lib/porthole"}},
		{"resolve not a list", valid + "resolve: a:1=1.2.3.4:1\n", []string{
			f + `:6: resolve: got "a:1=1.2.3.4:1"; expected a list of host:port=ip:port entries`}},
		{"resolve no equals", valid + "resolve:\n  - dps:443\n", []string{
			f + `:7: resolve: "dps:443" has no "="; expected host:port=ip:port, like global.azure-devices-provisioning.net:443=127.0.0.1:8443`}},
		{"resolve left side", valid + "resolve:\n  - dps=127.0.0.1:443\n", []string{
			f + `:7: resolve: "dps=127.0.0.1:443": the left side is not host:port; expected host:port=ip:port, like global.azure-devices-provisioning.net:443=127.0.0.1:8443`}},
		{"resolve right side", valid + "resolve:\n  - dps:443=localhost:443\n", []string{
			f + `:7: resolve: "dps:443=localhost:443": the right side is not ip:port; expected host:port=ip:port, like global.azure-devices-provisioning.net:443=127.0.0.1:8443`}},
		{"resolve duplicate", valid + "resolve:\n  - dps:443=127.0.0.1:1\n  - DPS:443=127.0.0.1:2\n", []string{
			f + `:8: resolve: "DPS:443=127.0.0.1:2" repeats DPS:443 (first on line 7); expected each host:port once`}},
		{"resolve entry a mapping", valid + "resolve:\n  - {a: b}\n", []string{
			f + ":7: resolve: got a mapping; expected a single value"}},

		// --- log ---
		{"log level", valid + "log:\n  level: verbose\n", []string{
			f + `:7: log.level: "verbose" is not a level; expected debug, info, warn or error`}},
		{"log format", valid + "log:\n  format: xml\n", []string{
			f + `:7: log.format: "xml" is not supported; expected text or json`}},
		{"log destination", valid + "log:\n  destination: journald\n", []string{
			f + `:7: log.destination: "journald" is not supported; expected stderr, syslog or file`}},
		{"log file missing", valid + "log:\n  destination: file\n", []string{
			f + ":7: log.file: missing; expected a path like /var/log/porthole/agent.log for destination: file"}},
		{"log size too small", valid + "log:\n  max_size: 100\n", []string{
			f + ":7: log.max_size: 100B is too small; expected at least 4KiB"}},
		{"log size not a size", valid + "log:\n  max_size: lots\n", []string{
			f + `:7: log.max_size: "lots" is not a size; expected a size like 1MiB (units: KiB, MiB)`}},
		{"log files zero", valid + "log:\n  max_files: 0\n", []string{
			f + ":7: log.max_files: 0 is out of range; expected 1 to 100"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := Parse(testFile, []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			if c != nil {
				t.Errorf("config returned with an error")
			}
			got := errLines(err)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(tc.want, "\n      "))
			}
			for _, fe := range FieldErrors(err) {
				if fe.positional && fe.Line == 0 {
					t.Errorf("positional error without a line: %v", fe)
				}
			}
		})
	}
}

// TestManyProblemsAtOnce checks that one run reports every problem, in line order.
func TestManyProblemsAtOnce(t *testing.T) {
	yaml := `provisioning:
  id_scop: 0ne00012345
  registration_id: "dev 1"
  attestation:
    symmetric_key: "not base64"
hub:
  keepalive: 30
streams:
  targets:
    ssh: 127.0.0.1
  max_concurrent: 0
log:
  level: loud
`
	_, _, err := Parse(testFile, []byte(yaml))
	want := []string{
		testFile + ":1: provisioning.id_scope: missing; expected the ID scope from the DPS overview page, like 0ne00012345",
		testFile + `:2: provisioning.id_scop: unknown key; did you mean "id_scope"?`,
		testFile + `:3: provisioning.registration_id: "dev 1" has a character DPS does not allow; expected letters, digits and - . _ : (at most 128, ending in a letter, digit or -)`,
		testFile + ":5: provisioning.attestation.symmetric_key: is not valid base64; expected the device key exactly as shown in the Azure portal",
		testFile + `:7: hub.keepalive: "30" has no unit; expected a duration like 4m (units: s, m, h)`,
		testFile + `:10: streams.targets.ssh: "127.0.0.1" has no port; expected host:port, like 127.0.0.1:22`,
		testFile + ":11: streams.max_concurrent: 0 is out of range; expected 1 to 1024",
		testFile + `:13: log.level: "loud" is not a level; expected debug, info, warn or error`,
	}
	if got := errLines(err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
	if n := len(FieldErrors(err)); n != len(want) {
		t.Errorf("FieldErrors: %d, want %d", n, len(want))
	}
}

func TestFieldErrorFormat(t *testing.T) {
	cases := []struct {
		e    FieldError
		want string
	}{
		{FieldError{File: "a.yaml", Line: 7, Field: "streams.targets.ssh", Problem: `"127.0.0.1" has no port`, Hint: "expected host:port"},
			`a.yaml:7: streams.targets.ssh: "127.0.0.1" has no port; expected host:port`},
		{FieldError{File: "a.yaml", Field: "provisioning.id_scope", Problem: "missing"}, "a.yaml: provisioning.id_scope: missing"},
		{FieldError{Line: 3, Field: "x", Problem: "bad"}, "line 3: x: bad"},
		{FieldError{Problem: "bad", Hint: "expected good"}, "bad; expected good"},
	}
	for _, tc := range cases {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	w := Warning{File: "a.yaml", Line: 2, Field: "f", Message: "careful"}
	if got := w.String(); got != "a.yaml:2: f: careful" {
		t.Errorf("warning: %q", got)
	}
}

// TestHealthMetricsSections: the health and metrics sections decode,
// default and refuse too short intervals with file:line.
func TestHealthMetricsSections(t *testing.T) {
	const f = "/etc/porthole/agent.yaml"
	valid := "provisioning:\n  id_scope: 0ne0000AAAA\n  registration_id: dev1\n  attestation:\n    symmetric_key: " + testKey + "\n"
	c, _, err := Parse(f, []byte(valid+"health:\n  twin_interval: 2m\nmetrics:\n  textfile: /var/lib/node_exporter\n  interval: 1m\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Health.TwinInterval != 2*time.Minute || c.Metrics.Textfile != "/var/lib/node_exporter" || c.Metrics.Interval != time.Minute {
		t.Errorf("decoded %+v %+v", c.Health, c.Metrics)
	}
	d := Default()
	if d.Health.TwinInterval != DefaultTwinInterval || d.Metrics.Interval != DefaultMetricsInterval || d.Metrics.Textfile != "" {
		t.Errorf("defaults %+v %+v", d.Health, d.Metrics)
	}
	_, _, err = Parse(f, []byte(valid+"health:\n  twin_interval: 100ms\nmetrics:\n  interval: 0s\n"))
	want := []string{
		f + ":7: health.twin_interval: 100ms is too short; expected at least 1s (default 30s)",
		f + ":9: metrics.interval: 0s is too short; expected at least 1s (default 15s)",
	}
	var got []string
	for _, fe := range FieldErrors(err) {
		got = append(got, fe.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ch := Changes(d, c); strings.Join(ch.Restart, ",") != "health.twin_interval,metrics.interval,metrics.textfile" {
		t.Errorf("changes %+v", ch)
	}
}
