package relay

import "testing"

func TestParseStreamPath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
		spec StreamSpec
		id   string
	}{
		{"/bridges/h/d/ssh/abc", true, StreamSpec{Hub: "h", DeviceID: "d", Name: "ssh"}, "abc"},
		{"/bridges/h/d/modules/m/ssh/abc", true, StreamSpec{Hub: "h", DeviceID: "d", ModuleID: "m", Name: "ssh"}, "abc"},
		{"/bridges/h/d%2Fx/s/1", true, StreamSpec{Hub: "h", DeviceID: "d/x", Name: "s"}, "1"},
		{"/bridges/h/d/s", false, StreamSpec{}, ""},
		{"/bridges/h/d/notmodules/m/s/1", false, StreamSpec{}, ""},
		{"/bridges/h//s/1", false, StreamSpec{}, ""},
		{"/bridges/h/d/s/%zz", false, StreamSpec{}, ""},
		{"/other/h/d/s/1", false, StreamSpec{}, ""},
		{"", false, StreamSpec{}, ""},
	}
	for _, tt := range tests {
		spec, id, ok := parseStreamPath(tt.path)
		if ok != tt.ok || spec != tt.spec || id != tt.id {
			t.Errorf("parseStreamPath(%q) = %+v, %q, %v; want %+v, %q, %v", tt.path, spec, id, ok, tt.spec, tt.id, tt.ok)
		}
	}
}

// FuzzStreamPath checks that any path parses without panicking and that
// built paths parse back to what built them.
func FuzzStreamPath(f *testing.F) {
	f.Add("hub.azure-devices.net", "dev 1?", "", "ssh", "0123abcd")
	f.Add("h", "d", "modules", "s/x", "1")
	f.Add("h", "d%2F", "m", "%", "/")
	f.Fuzz(func(t *testing.T, hub, dev, mod, name, id string) {
		parseStreamPath(hub) // arbitrary input must not panic
		if hub == "" || dev == "" || name == "" || id == "" {
			return
		}
		spec := StreamSpec{Hub: hub, DeviceID: dev, ModuleID: mod, Name: name}
		p := streamPath(spec, id)
		got, gotID, ok := parseStreamPath(p)
		if !ok || got != spec || gotID != id {
			t.Fatalf("path %q parsed to %+v %q %v, want %+v %q", p, got, gotID, ok, spec, id)
		}
	})
}
