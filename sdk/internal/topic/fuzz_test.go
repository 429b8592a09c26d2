package topic

import (
	"reflect"
	"strings"
	"testing"
)

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "$.ct", "a b+c&d=e/f?g#h", "é\x00\xff", "%41"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		for i := 0; i < len(e); i++ {
			if c := e[i]; !unreserved(c) && c != '%' {
				t.Fatalf("Escape(%q) = %q leaves %q", s, e, c)
			}
		}
		if d, err := Unescape(e); err != nil || d != s {
			t.Fatalf("Unescape(Escape(%q)) = %q, %v", s, d, err)
		}
		_, _ = Unescape(s) // must not panic
	})
}

func FuzzDecodeProperties(f *testing.F) {
	for _, s := range []string{"", "%24.mid=1&k=v", "%24.to=%2Fdevices%2Fx&%24.ct=text%2Fplain", "k&&v=1&=x", "a=b=c", "%zz=1", "$.unknown=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := DecodeProperties(s)
		if err != nil {
			return
		}
		enc, err := p.Encode()
		if err != nil {
			// Only inbound names outside what a device may send.
			for _, u := range p.User {
				if u.Name == "" || u.Name[0] == '$' {
					return
				}
			}
			t.Fatalf("Encode(%+v) = %v", p, err)
		}
		p2, err := DecodeProperties(enc)
		if err != nil || !propsEqual(p, p2) {
			t.Fatalf("round trip of %q:\n%+v\n%+v (%v)", s, p, p2, err)
		}
	})
}

// FuzzPropertiesRoundTrip builds a bag from fuzzed fields: Decode(Encode(p)) == p.
func FuzzPropertiesRoundTrip(f *testing.F) {
	f.Add("m", "application/json", "utf-8", "k", "v", "k2", "")
	f.Add("", "", "", "a&b", "c=d", "é", "%")
	f.Fuzz(func(t *testing.T, mid, ct, ce, k1, v1, k2, v2 string) {
		p := Properties{MessageID: mid, ContentType: ct, ContentEncoding: ce}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}} {
			if kv[0] != "" && kv[0][0] != '$' {
				p.User = append(p.User, Property{kv[0], kv[1]})
			}
		}
		enc, err := p.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(enc, "/#+?\x00") {
			t.Fatalf("encoded bag %q has characters that break a topic", enc)
		}
		got, err := DecodeProperties(enc)
		if err != nil || !propsEqual(got, p) {
			t.Fatalf("Decode(Encode(%+v)) = %+v, %v", p, got, err)
		}
		tel, err := C2D(C2DMessage{DeviceID: "dev1", Properties: p})
		if err != nil {
			t.Fatal(err)
		}
		m, err := ParseC2D(tel)
		if err != nil || m.DeviceID != "dev1" || !propsEqual(m.Properties, p) {
			t.Fatalf("ParseC2D(C2D(%+v)) = %+v, %v", p, m, err)
		}
	})
}

func propsEqual(a, b Properties) bool {
	if len(a.User) == 0 && len(b.User) == 0 {
		a.User, b.User = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

func FuzzParseC2D(f *testing.F) {
	for _, s := range []string{"devices/dev1/messages/devicebound/%24.mid=1&k=v", "devices/dev1/messages/devicebound/", "devices//messages/devicebound/x", "devices/a/messages/devicebound/k=v/tail"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseC2D(s)
		if err != nil {
			return
		}
		if m.DeviceID == "" || strings.Contains(m.DeviceID, "/") {
			t.Fatalf("ParseC2D(%q) device %q", s, m.DeviceID)
		}
		topic, err := C2D(m)
		if err != nil {
			return // inbound names a device could not send
		}
		m2, err := ParseC2D(topic)
		if err != nil || m2.DeviceID != m.DeviceID || !propsEqual(m.Properties, m2.Properties) {
			t.Fatalf("re-parse of %q: %+v vs %+v (%v)", s, m, m2, err)
		}
	})
}

func FuzzParseTwinResponse(f *testing.F) {
	for _, s := range []string{"$iothub/twin/res/200/?$rid=1", "$iothub/twin/res/204/?$rid=1&$version=5", "$iothub/twin/res/204/?$version=99999999999999999999&$rid=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseTwinResponse(s)
		if err != nil {
			return
		}
		if r.RID == "" || r.Status < 100 || r.Status > 999 {
			t.Fatalf("ParseTwinResponse(%q) = %+v", s, r)
		}
		if strings.ContainsAny(r.RID, "&") {
			t.Fatalf("rid %q kept a separator", r.RID)
		}
		r2, err := ParseTwinResponse(r.Topic())
		if err != nil || r2 != r {
			t.Fatalf("parse(build(%+v)) = %+v, %v", r, r2, err)
		}
	})
}

func FuzzParseTwinDesired(f *testing.F) {
	f.Add("$iothub/twin/PATCH/properties/desired/?$version=3")
	f.Add("$iothub/twin/PATCH/properties/desired/")
	f.Fuzz(func(t *testing.T, s string) {
		v, ok, err := ParseTwinDesired(s)
		if err != nil || !ok {
			return
		}
		if v2, ok2, err := ParseTwinDesired(TwinDesired(v)); err != nil || !ok2 || v2 != v {
			t.Fatalf("parse(build(%d)) = %d, %v, %v", v, v2, ok2, err)
		}
	})
}

func FuzzParseMethodRequest(f *testing.F) {
	f.Add("$iothub/methods/POST/reprovision/?$rid=1")
	f.Add("$iothub/methods/POST/a?b/?$rid=1&x=y")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseMethodRequest(s)
		if err != nil {
			return
		}
		r2, err := ParseMethodRequest(r.Topic())
		if err != nil || r2 != r {
			t.Fatalf("parse(build(%+v)) = %+v, %v", r, r2, err)
		}
	})
}

func FuzzParseStreamRequest(f *testing.F) {
	f.Add("$iothub/streams/POST/ssh/?$rid=7&$url=wss%3A%2F%2Fh%3A443%2Fb&$auth=tok")
	f.Add("$iothub/streams/POST/ssh/?$auth=a==&$ip=1&$url=u&$rid=1")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseStreamRequest(s)
		if err != nil {
			return
		}
		topic, err := r.Topic()
		if err != nil {
			return // raw values a well-behaved hub would not send
		}
		r2, err := ParseStreamRequest(topic)
		if err != nil || r2 != r {
			t.Fatalf("parse(build(%+v)) = %+v, %v", r, r2, err)
		}
	})
}

// FuzzStreamRequestRoundTrip builds from fields: every URL survives.
func FuzzStreamRequestRoundTrip(f *testing.F) {
	f.Add("ssh", "7", "wss://sgw.local:443/bridges/hub/dev1/x?y=1&z=%41", "tok")
	f.Fuzz(func(t *testing.T, name, rid, url, auth string) {
		r := StreamRequest{Name: name, RID: rid, URL: url, Auth: auth}
		topic, err := r.Topic()
		if err != nil || url == "" || strings.Contains(name, "?") || strings.ContainsAny(rid+auth, "=?") {
			return
		}
		got, err := ParseStreamRequest(topic)
		if err != nil || got != r {
			t.Fatalf("parse(build(%+v)) = %+v, %v (topic %q)", r, got, err, topic)
		}
	})
}

func FuzzParseDPSResponse(f *testing.F) {
	f.Add("$dps/registrations/res/202/?$rid=1&retry-after=3")
	f.Add("$dps/registrations/res/429/?Retry-After=5&$rid=9&x")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseDPSResponse(s)
		if err != nil {
			return
		}
		if strings.Contains(r.RetryAfter, "&") {
			return
		}
		r2, err := ParseDPSResponse(r.Topic())
		if err != nil || r2 != r {
			t.Fatalf("parse(build(%+v)) = %+v, %v", r, r2, err)
		}
	})
}
