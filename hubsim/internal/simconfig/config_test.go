package simconfig

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Ports.HTTPS != 443 || c.Ports.MQTT != 8883 {
		t.Errorf("ports = %+v", c.Ports)
	}
	if c.DPS.IDScope != "0ne00000001" {
		t.Errorf("id scope = %q", c.DPS.IDScope)
	}
	if len(c.Hubs) != 2 || c.Hubs[0].HostName != "hub-eu.local" || c.Hubs[1].HostName != "hub-us.local" {
		t.Errorf("hubs = %+v", c.Hubs)
	}
	if _, ok := c.Hubs[0].Policy(PolicyIoTHubOwner); !ok {
		t.Error("default hub has no iothubowner policy")
	}
	if _, ok := c.DPS.Policy(PolicyDPSOwner); !ok {
		t.Error("default DPS has no provisioningserviceowner policy")
	}
	if c.Streams.HandshakeTimeout != 60*time.Second {
		t.Errorf("handshake timeout = %v", c.Streams.HandshakeTimeout)
	}
}

// TestSampleFile keeps configs/hubsim.yaml in step with the defaults it documents.
func TestSampleFile(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "..", "configs", "hubsim.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d := Default()
	c.source, c.lines = "", nil
	if len(c.ExtraNames) == 0 {
		c.ExtraNames = nil
	}
	if !reflect.DeepEqual(c, d) {
		t.Errorf("sample differs from defaults:\n got %+v\nwant %+v", c, d)
	}
}

func TestParse(t *testing.T) {
	src := `
listen: ["127.0.0.1", "127.0.0.2"]
ports: {https: 0, mqtt: 0}
state_dir: st
dps:
  id_scope: 0ne0000ABCD
hubs:
  - hostname: 127.0.0.2
  - name: second
    hostname: Hub2.Example
    policies:
      - name: iothubowner
        rights: [RegistryRead, ServiceConnect]
        primary_key: AAAAAAAAAAAAAAAAAAAAAA==
streams:
  handshake_timeout: 5s
  new_per_second: 0
`
	c, err := Parse("x.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Ports != (Ports{}) {
		t.Errorf("explicit 0 ports not kept: %+v", c.Ports)
	}
	if c.DPS.IDScope != "0ne0000ABCD" || c.DPS.GlobalEndpoint != DefaultGlobalEndpoint {
		t.Errorf("dps = %+v", c.DPS)
	}
	if len(c.Hubs) != 2 || c.Hubs[0].Name != "127" || c.Hubs[1].Name != "second" {
		t.Errorf("hubs = %+v", c.Hubs)
	}
	if len(c.Hubs[0].Policies) != len(DefaultHubPolicies()) || len(c.Hubs[1].Policies) != 1 {
		t.Errorf("policies: %+v", c.Hubs)
	}
	if c.Streams.HandshakeTimeout != 5*time.Second || c.Streams.NewPerSecond != 0 || c.Streams.ConcurrentPerHub != DefaultConcurrentPerHub {
		t.Errorf("streams = %+v", c.Streams)
	}
	if h, ok := c.Hub("hub2.example"); !ok || h.Name != "second" {
		t.Errorf("Hub lookup: %v %v", h, ok)
	}
	names := strings.Join(c.CertNames(), ",")
	for _, want := range []string{"127.0.0.2", "Hub2.Example", DefaultGlobalEndpoint, DefaultDPSHostName} {
		if !strings.Contains(names, want) {
			t.Errorf("CertNames %s lacks %s", names, want)
		}
	}
	// The certificate covers every host name, then the specific listen
	// addresses.
	if want := strings.Join(append(c.HostNames(), "127.0.0.1", "127.0.0.2"), ","); names != want {
		t.Errorf("CertNames %s, want %s", names, want)
	}
}

// TestParseMergeKeys: YAML merge keys ("<<: *anchor") are read as the
// decoder reads them, not refused as unknown keys.
func TestParseMergeKeys(t *testing.T) {
	src := "hubs:\n  - &h\n    hostname: a.local\n    policies: [{name: owner, rights: [RegistryRead]}]\n  - <<: *h\n    hostname: b.local\n"
	c, err := Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Hubs) != 2 || c.Hubs[1].HostName != "b.local" || len(c.Hubs[1].Policies) != 1 || c.Hubs[1].Policies[0].Name != "owner" {
		t.Errorf("hubs %+v", c.Hubs)
	}
}

func TestParseEmpty(t *testing.T) {
	c, err := Parse("empty.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestDecodeErrors: a decoding error names file:line: field, what is wrong
// and what is expected, never a Go type name; an unknown key gets the
// closest known key of its mapping.
func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown top field", "listen: [127.0.0.1]\nbogus: 1\n", "f.yaml:2: bogus: unknown key"},
		{"unknown top field, close to a known one", "listen: [127.0.0.1]\nlimit:\n  max_connections: 5\n",
			`f.yaml:2: limit: unknown key; did you mean "limits"?`},
		{"unknown nested field", "dps:\n  id_scope: x\n  idscope: y\n", `f.yaml:3: dps.idscope: unknown key; did you mean "id_scope"?`},
		{"unknown field in a list item", "hubs:\n  - hostname: a.local\n    polices: []\n",
			`f.yaml:3: hubs[0].polices: unknown key; did you mean "policies"?`},
		{"unknown limits field", "limits:\n  max_conections: 5\n", `f.yaml:2: limits.max_conections: unknown key; did you mean "max_connections"?`},
		{"wrong type", "ports:\n  https: many\n", `f.yaml:2: ports.https: "many" is not valid here; expected an integer`},
		{"bad duration", "streams:\n  handshake_timeout: soon\n", `f.yaml:2: streams.handshake_timeout: "soon" is not valid here; expected a duration like 30s (units: ms, s, m, h)`},
		{"bad limits duration", "limits:\n  body_timeout: banana\n", `f.yaml:2: limits.body_timeout: "banana" is not valid here; expected a duration like 30s (units: ms, s, m, h)`},
		{"bad bool", "storage:\n  durable: maybe\n", `f.yaml:2: storage.durable: "maybe" is not valid here; expected true or false`},
		{"bad number", "limits:\n  device_connections_per_second: lots\n", `f.yaml:2: limits.device_connections_per_second: "lots" is not valid here; expected a number`},
		{"mapping where a list goes", "hubs:\n  hostname: a.local\n", `f.yaml:2: hubs: a mapping is not valid here; expected a list`},
		{"list where a mapping goes", "limits: [1, 2]\n", `f.yaml:1: limits: a list is not valid here; expected a mapping`},
		{"two problems", "ports:\n  https: many\n  mqtt: few\n",
			"f.yaml:2: ports.https: \"many\" is not valid here; expected an integer\nf.yaml:3: ports.mqtt: \"few\" is not valid here; expected an integer"},
		{"syntax", "hubs: [\n", "f.yaml:"},
		{"unknown key in a merged mapping", "x: &p\n  nam: a\nhubs:\n  - <<: *p\n    hostname: a.local\n",
			`f.yaml:1: x: unknown key` + "\n" + `f.yaml:2: hubs[0].nam: unknown key; did you mean "name"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if tt.name == "syntax" {
				if !strings.HasPrefix(err.Error(), tt.want) {
					t.Fatalf("err = %v, want starting with %q", err, tt.want)
				}
				return
			}
			if err.Error() != tt.want {
				t.Fatalf("err = %q\nwant  %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "simconfig.") || strings.Contains(err.Error(), "time.Duration") {
				t.Errorf("Go type name in %q", err)
			}
		})
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"bad listen", "listen: [localhost]\n", []string{"f.yaml:1: listen[0]: \"localhost\" is not an IP"}},
		{"port range", "ports:\n  https: 70000\n", []string{"f.yaml:2: ports.https: port 70000 out of range"}},
		{"same ports", "ports: {https: 1443, mqtt: 1443}\n", []string{"ports.mqtt: same port"}},
		{"dup hosts", "hubs:\n  - hostname: a.local\n  - hostname: A.local\n", []string{"f.yaml:3: hubs[1].hostname: host name \"A.local\" already used by hubs[0].hostname"}},
		{"hub host is dps", "hubs:\n  - hostname: dps.local\n", []string{"hubs[0].hostname: host name \"dps.local\" already used"}},
		{"ip hub not listened", "hubs:\n  - hostname: 127.0.0.9\n", []string{"f.yaml:2: hubs[0].hostname: IP host name \"127.0.0.9\" is not one of the listen addresses"}},
		{"empty hub host", "hubs:\n  - name: x\n", []string{"f.yaml:2: hubs[0].hostname: must not be empty"}},
		{"no hubs", "hubs: []\n", []string{"f.yaml:1: hubs: at least one hub"}},
		{"bad right", "hubs:\n  - hostname: a.local\n    policies:\n      - name: iothubowner\n        rights: [EnrollmentRead]\n", []string{"f.yaml:5: hubs[0].policies[0].rights[0]: unknown right \"EnrollmentRead\""}},
		{"owner missing", "dps:\n  policies:\n    - name: reader\n      rights: [EnrollmentRead]\n", []string{"f.yaml:2: dps.policies: policy \"provisioningserviceowner\" is required"}},
		{"bad key", "dps:\n  policies:\n    - name: provisioningserviceowner\n      rights: [ServiceConfig]\n      primary_key: secret!\n", []string{"f.yaml:5: dps.policies[0].primary_key: not valid base64"}},
		{"short key", "dps:\n  policies:\n    - name: provisioningserviceowner\n      rights: [ServiceConfig]\n      primary_key: AAAA\n", []string{"primary_key: too short"}},
		{"bad scope", "dps:\n  id_scope: a/b\n", []string{"f.yaml:2: dps.id_scope"}},
		{"scope shadows a route", "dps:\n  id_scope: Twins\n", []string{"f.yaml:2: dps.id_scope: \"Twins\" is the first path segment of another hubsim API"}},
		{"bad log", "log:\n  level: loud\n  format: xml\n", []string{"f.yaml:2: log.level", "f.yaml:3: log.format"}},
		{"bad streams", "streams:\n  handshake_timeout: 0s\n  new_per_second: -1\n", []string{"f.yaml:2: streams.handshake_timeout", "f.yaml:3: streams.new_per_second"}},
		{"bad extra name", "extra_names: [\"a b\"]\n", []string{"f.yaml:1: extra_names[0]"}},
		{"bad storage", "storage:\n  mode: disk\n", []string{"f.yaml:2: storage.mode: must be \"sqlite\" or \"memory\", not \"disk\""}},
		{"all at once", "listen: []\nstate_dir: \"\"\nhubs: []\n", []string{"listen: at least one", "state_dir: must not be empty", "hubs: at least one"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("f.yaml", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			if err == nil {
				t.Fatal("Validate passed")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestValidateNeverEchoesKeys(t *testing.T) {
	c := Default()
	c.DPS.Policies[0].PrimaryKey = "c2VjcmV0" // "secret", too short
	err := c.Validate()
	if err == nil || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Fatalf("err = %v", err)
	}
}

func TestEnsureKeys(t *testing.T) {
	dir := t.TempDir()
	c := Default()
	c.StateDir = dir
	given := "AQIDBAUGBwgJCgsMDQ4PEA==" // 16 bytes
	c.Hubs[1].Policies[0].PrimaryKey = given
	if err := c.EnsureKeys(nil); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, KeysFileName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("keys.json mode %v", st.Mode().Perm())
	}
	for _, h := range c.Hubs {
		for _, p := range h.Policies {
			if p.PrimaryKey == "" || p.SecondaryKey == "" || p.PrimaryKey == p.SecondaryKey {
				t.Errorf("hub %s policy %s keys not filled", h.HostName, p.Name)
			}
		}
	}
	if c.Hubs[1].Policies[0].PrimaryKey != given {
		t.Error("configured key was replaced")
	}
	if c.Hubs[0].Policies[0].PrimaryKey == c.Hubs[1].Policies[0].SecondaryKey {
		t.Error("keys shared between hubs")
	}
	data, _ := os.ReadFile(filepath.Join(dir, KeysFileName))
	if bytes.Contains(data, []byte(given)) {
		t.Error("configured key was written to keys.json")
	}
	var kf keysFile
	if err := json.Unmarshal(data, &kf); err != nil {
		t.Fatal(err)
	}

	// A second start reuses the same keys and does not rewrite the file.
	before := st.ModTime()
	c2 := Default()
	c2.StateDir = dir
	c2.Hubs[1].Policies[0].PrimaryKey = given
	if err := c2.EnsureKeys(nil); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Hubs, c2.Hubs) || !reflect.DeepEqual(c.DPS, c2.DPS) {
		t.Error("keys differ on second start")
	}
	st2, _ := os.Stat(filepath.Join(dir, KeysFileName))
	if !st2.ModTime().Equal(before) {
		t.Error("keys.json rewritten without change")
	}
	cs, ok := c2.Hubs[0].ConnectionString(PolicyIoTHubOwner)
	want := "HostName=hub-eu.local;SharedAccessKeyName=iothubowner;SharedAccessKey=" + c.Hubs[0].Policies[0].PrimaryKey
	if !ok || cs != want {
		t.Errorf("connection string = %q, want %q", cs, want)
	}
	dcs, ok := c2.DPS.ConnectionString(PolicyDPSOwner)
	if !ok || !strings.HasPrefix(dcs, "HostName=dps.local;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=") {
		t.Errorf("DPS connection string = %q", dcs)
	}
	if _, ok := c2.DPS.ConnectionString("nope"); ok {
		t.Error("connection string for a missing policy")
	}
}

func TestEnsureKeysBadFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, KeysFileName), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Default()
	c.StateDir = dir
	if err := c.EnsureKeys(nil); err == nil {
		t.Fatal("corrupt keys.json accepted")
	}
}

func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	c := Default()
	c.Log = Log{Level: "warn", Format: "json"}
	l, err := c.Logger(&buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	l.Warn("shown", "device", "d1")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), `"device":"d1"`) {
		t.Errorf("log output %q", buf.String())
	}
	c.Log.Format = "xml"
	if _, err := c.Logger(&buf); err == nil {
		t.Error("bad format accepted")
	}
}

func TestCADirectory(t *testing.T) {
	c := Default()
	c.StateDir = "s"
	if got := c.CADirectory(); got != filepath.Join("s", "ca") {
		t.Errorf("CADirectory = %q", got)
	}
	c.CADir = "elsewhere"
	if got := c.CADirectory(); got != "elsewhere" {
		t.Errorf("CADirectory = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	sample, _ := os.ReadFile(filepath.Join("..", "..", "..", "configs", "hubsim.yaml"))
	for _, s := range []string{string(sample), "", "hubs: [\n", "listen: [x]\nports: {https: -1}\n", "dps: {policies: [{name: ''}]}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error without file name: %v", err)
			}
			return
		}
		_ = c.Validate()
	})
}
