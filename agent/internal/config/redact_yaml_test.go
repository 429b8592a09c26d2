package config

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

func TestYAMLScalar(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", `""`},
		{"s", "s"},
		{"0ne00012345", "0ne00012345"},
		{"127.0.0.1:22", "127.0.0.1:22"},
		{"[::1]:80", "'[::1]:80'"},
		{"http://op:xxxxx@proxy.lab:3128", "http://op:xxxxx@proxy.lab:3128"},
		{"[redacted]", "'[redacted]'"},
		{"1m30s", "1m30s"},
		{"64KiB", "64KiB"},
		{"true", "'true'"},
		{"No", "'No'"},
		{"null", "'null'"},
		{"~", "'~'"},
		{"12", "'12'"},
		{"0x1F", "'0x1F'"},
		{"1e5", "'1e5'"},
		{"1_000", "'1_000'"},
		{"1:20", "'1:20'"},
		{"1:20.5", "'1:20.5'"},
		{"2001-12-14", "'2001-12-14'"},
		{".inf", "'.inf'"},
		{"a:", "'a:'"},
		{"a: b", "'a: b'"},
		{"a #b", "'a #b'"},
		{"it's", "'it''s'"},
		{"-x", "'-x'"},
		{"tab\there", `"tab\u0009here"`},
		{"line\nbreak", `"line\u000abreak"`},
		{"q\"\\\x7f\u2028", `"q\"\\\u007f\u2028"`},
	}
	for _, tc := range cases {
		if got := yamlScalar(tc.in); got != tc.want {
			t.Errorf("yamlScalar(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// FuzzYAMLScalar checks the hand-written YAML against yaml.v3: every
// string, as a key, a value and a list item, reads back as exactly that
// string.
func FuzzYAMLScalar(f *testing.F) {
	for _, s := range []string{"", "a", "0ne1", "1:20", "yes", "'", "\"", "\\", "a\u2028b", "- a", "? x", "&a", "*a", "!t", "%x", "@x", "`x", "a,b", "{a}", "0o17", "+1", "-.5", "2001-12-14t21:59:43.10-05:00", "10.0.0.1", "\x7f", "é", "0_", strings.Repeat("k", 1100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // YAML text is UTF-8; config values come from a YAML file
		}
		w := &yamlWriter{}
		w.section(0, "m")
		w.str(1, s, s)
		w.section(0, "l")
		w.item(1, yamlScalar(s))
		doc := w.b.String()
		var top struct {
			M map[string]any
			L []any
		}
		if err := yaml.Unmarshal([]byte(doc), &top); err != nil {
			t.Fatalf("%q renders as %q, which does not parse: %v", s, doc, err)
		}
		if len(top.L) != 1 || top.L[0] != s {
			t.Fatalf("%q renders as %q, which reads back as %#v", s, doc, top.L)
		}
		m := top.M
		v, ok := m[s]
		if len(m) != 1 || !ok {
			t.Fatalf("%q renders as %q, which reads back as %#v", s, doc, m)
		}
		if got, ok := v.(string); !ok || got != s {
			t.Fatalf("%q renders as %q, which reads back as %#v", s, doc, v)
		}
	})
}

// FuzzPayloadYAML checks that the payload, written as YAML flow, reads back
// as the same JSON value.
func FuzzPayloadYAML(f *testing.F) {
	for _, s := range []string{`{"n":3,"site":"plant-7"}`, `[1,2.5,true,null,"a'b"]`, `"x"`, `5`, `{"a":{"b":[{}]},"c\"d":"e,f:g"}`, `{"k":"\u2028<&>"}`, `1e21`, `-0`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want any
		if json.Unmarshal(data, &want) != nil {
			return
		}
		// The config holds canonical JSON (decode.go's toJSON output).
		canon, err := json.Marshal(want)
		if err != nil {
			return
		}
		doc := "k: " + payloadYAML(canon) + "\n"
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("%s renders as %q, which does not parse: %v", canon, doc, err)
		}
		back, err := json.Marshal(m["k"])
		if err != nil {
			t.Fatalf("%s renders as %q, which reads back as %#v: %v", canon, doc, m["k"], err)
		}
		var got any
		if err := json.Unmarshal(back, &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s renders as %q, which reads back as %s", canon, doc, back)
		}
	})
	if got := payloadYAML(nil); got != "null" {
		f.Errorf("empty payload = %q", got)
	}
}
