package auth

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
)

const csKey = "cGFzc3dvcmQ="

func TestParseDeviceConnectionString(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want DeviceConnectionString
		err  error
		msg  string
	}{
		{name: "device key", in: "HostName=hub.example;DeviceId=dev1;SharedAccessKey=" + csKey,
			want: DeviceConnectionString{HostName: "hub.example", DeviceID: "dev1", SharedAccessKey: csKey}},
		{name: "module and gateway, any order, trailing ;",
			in: "DeviceId=dev1;ModuleId=m1;SharedAccessKey=" + csKey + ";GatewayHostName=127.0.0.1:8883;HostName=hub.example;",
			want: DeviceConnectionString{HostName: "hub.example", DeviceID: "dev1", ModuleID: "m1", SharedAccessKey: csKey,
				GatewayHostName: "127.0.0.1:8883"}},
		{name: "x509", in: "HostName=h;DeviceId=d;x509=true",
			want: DeviceConnectionString{HostName: "h", DeviceID: "d", X509: true}},
		{name: "x509 True", in: "HostName=h;DeviceId=d;x509=True",
			want: DeviceConnectionString{HostName: "h", DeviceID: "d", X509: true}},
		{name: "token", in: "HostName=h;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=h%2Fdevices%2Fd&sig=" + validSig + "&se=1",
			want: DeviceConnectionString{HostName: "h", DeviceID: "d",
				SharedAccessSignature: "SharedAccessSignature sr=h%2Fdevices%2Fd&sig=" + validSig + "&se=1"}},
		{name: "unknown kept", in: "HostName=h;DeviceId=d;SharedAccessKey=" + csKey + ";Foo=a=b",
			want: DeviceConnectionString{HostName: "h", DeviceID: "d", SharedAccessKey: csKey, Extra: map[string]string{"Foo": "a=b"}}},

		{name: "empty", in: "  ", err: ErrMalformedConnectionString},
		{name: "no host", in: "DeviceId=d;SharedAccessKey=" + csKey, err: ErrMissingKey, msg: "HostName"},
		{name: "lower-case key", in: "hostname=h;DeviceId=d;SharedAccessKey=" + csKey, err: ErrMissingKey, msg: `found "hostname"`},
		{name: "empty device", in: "HostName=h;DeviceId=;SharedAccessKey=" + csKey, err: ErrMissingKey, msg: "DeviceId is empty"},
		{name: "no credential", in: "HostName=h;DeviceId=d", err: ErrMissingKey, msg: "SharedAccessKey (or SharedAccessSignature, or x509=true)"},
		{name: "key and x509", in: "HostName=h;DeviceId=d;SharedAccessKey=" + csKey + ";x509=true", err: ErrMalformedConnectionString, msg: "only one"},
		{name: "x509 false", in: "HostName=h;DeviceId=d;x509=false", err: ErrMalformedConnectionString, msg: "x509"},
		{name: "bad key", in: "HostName=h;DeviceId=d;SharedAccessKey=zz!", err: ErrInvalidKey, msg: "SharedAccessKey"},
		{name: "bad token", in: "HostName=h;DeviceId=d;SharedAccessSignature=sr=x", err: ErrMalformedToken},
		{name: "segment without =", in: "HostName=h;DeviceId;SharedAccessKey=" + csKey, err: ErrMalformedConnectionString, msg: "no '='"},
		{name: "empty key name", in: "HostName=h;=x;DeviceId=d;SharedAccessKey=" + csKey, err: ErrMalformedConnectionString, msg: "empty key"},
		{name: "duplicate", in: "HostName=h;HostName=g;DeviceId=d;SharedAccessKey=" + csKey, err: ErrMalformedConnectionString, msg: "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDeviceConnectionString(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("err = %v, want %v containing %q", err, tt.err, tt.msg)
				}
				if strings.Contains(err.Error(), csKey) {
					t.Fatalf("error echoes the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equalDevice(got, tt.want) {
				t.Fatalf("got  %#v\nwant %#v", got, tt.want)
			}
			again, err := ParseDeviceConnectionString(got.Encode())
			if err != nil || !equalDevice(again, got) {
				t.Fatalf("round trip: %#v %v", again, err)
			}
		})
	}
}

func equalDevice(a, b DeviceConnectionString) bool {
	return a.HostName == b.HostName && a.DeviceID == b.DeviceID && a.ModuleID == b.ModuleID &&
		a.SharedAccessKey == b.SharedAccessKey && a.SharedAccessSignature == b.SharedAccessSignature &&
		a.X509 == b.X509 && a.GatewayHostName == b.GatewayHostName && maps.Equal(a.Extra, b.Extra)
}

func TestParseServiceConnectionString(t *testing.T) {
	got, err := ParseServiceConnectionString("HostName=hub.example;SharedAccessKeyName=iothubowner;SharedAccessKey=" + csKey)
	if err != nil {
		t.Fatal(err)
	}
	want := ServiceConnectionString{HostName: "hub.example", SharedAccessKeyName: "iothubowner", SharedAccessKey: csKey}
	if got.HostName != want.HostName || got.SharedAccessKeyName != want.SharedAccessKeyName || got.SharedAccessKey != want.SharedAccessKey || got.Extra != nil {
		t.Fatalf("got %#v", got)
	}
	for _, tt := range []struct{ in, msg string }{
		{"HostName=h;SharedAccessKey=" + csKey, "SharedAccessKeyName"},
		{"HostName=h;SharedAccessKeyName=p", "SharedAccessKey"},
		{"SharedAccessKeyName=p;SharedAccessKey=" + csKey, "HostName"},
	} {
		if _, err := ParseServiceConnectionString(tt.in); !errors.Is(err, ErrMissingKey) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%q: err = %v, want missing %s", tt.in, err, tt.msg)
		}
	}
	if _, err := ParseServiceConnectionString("HostName=h;SharedAccessKeyName=p;SharedAccessKey=***"); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("bad key: %v", err)
	}
}

func TestConnectionStringStringRedacts(t *testing.T) {
	d, _ := ParseDeviceConnectionString("HostName=h;DeviceId=d;SharedAccessKey=" + csKey)
	if got := d.String(); got != "HostName=h;DeviceId=d;SharedAccessKey=…" {
		t.Errorf("device String() = %q", got)
	}
	if got := d.Encode(); got != "HostName=h;DeviceId=d;SharedAccessKey="+csKey {
		t.Errorf("device Encode() = %q", got)
	}
	s, _ := ParseServiceConnectionString("HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + csKey + ";Z=1")
	if got := s.String(); got != "HostName=h;SharedAccessKeyName=p;SharedAccessKey=…;Z=1" {
		t.Errorf("service String() = %q", got)
	}
}

func TestConnectionStringSigners(t *testing.T) {
	now := func() time.Time { return time.Unix(1000, 0) }
	d, _ := ParseDeviceConnectionString("HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=" + csKey)
	if d.Resource() != "h/devices/d/modules/m" {
		t.Fatalf("resource %q", d.Resource())
	}
	ds, err := d.Signer(now)
	if err != nil || ds.SR() != "h%2Fdevices%2Fd%2Fmodules%2Fm" {
		t.Fatalf("%v %v", ds, err)
	}
	x, _ := ParseDeviceConnectionString("HostName=h;DeviceId=d;x509=true")
	if _, err := x.Signer(now); !errors.Is(err, ErrMissingKey) {
		t.Fatalf("x509 signer: %v", err)
	}
	s, _ := ParseServiceConnectionString("HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + csKey)
	ss, err := s.Signer(now)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, _ := ss.Sign(time.Minute)
	if p, err := ParseToken(tok); err != nil || p.KeyName != "p" || p.SR != "h" {
		t.Fatalf("%+v %v", p, err)
	}
}
