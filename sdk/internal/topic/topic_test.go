package topic

import (
	"errors"
	"reflect"
	"testing"
)

// TestPinnedBytes pins every builder's exact output.
func TestPinnedBytes(t *testing.T) {
	bag := Properties{
		MessageID:       "m-1",
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		User:            []Property{{"alert", "high temp"}, {"a&b=c", "x/y?z"}},
	}
	tel, err := Telemetry("dev1", "", bag)
	if err != nil {
		t.Fatal(err)
	}
	modTel, err := Telemetry("dev1", "mod1", Properties{CorrelationID: "c 1"})
	if err != nil {
		t.Fatal(err)
	}
	bare, err := Telemetry("dev1", "", Properties{})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := StreamRequest{Name: "ssh", RID: "7", URL: "wss://sgw.local:443/bridges/hub/dev1/abc?x=1", Auth: "tok_-.~"}.Topic()
	if err != nil {
		t.Fatal(err)
	}
	c2d, err := C2D(C2DMessage{DeviceID: "dev1", Properties: Properties{To: "/devices/dev1/messages/deviceBound", MessageID: "42"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ got, want string }{
		{tel, "devices/dev1/messages/events/%24.mid=m-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high%20temp&a%26b%3Dc=x%2Fy%3Fz"},
		{modTel, "devices/dev1/modules/mod1/messages/events/%24.cid=c%201"},
		{bare, "devices/dev1/messages/events/"},
		{C2DSubscription("dev1"), "devices/dev1/messages/devicebound/#"},
		{c2d, "devices/dev1/messages/devicebound/%24.mid=42&%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound"},
		{TwinGet("1"), "$iothub/twin/GET/?$rid=1"},
		{TwinPatchReported("2"), "$iothub/twin/PATCH/properties/reported/?$rid=2"},
		{TwinResponse{Status: 204, RID: "2", Version: 5, HasVersion: true}.Topic(), "$iothub/twin/res/204/?$rid=2&$version=5"},
		{TwinResponse{Status: 200, RID: "1"}.Topic(), "$iothub/twin/res/200/?$rid=1"},
		{TwinDesired(3), "$iothub/twin/PATCH/properties/desired/?$version=3"},
		{MethodRequest{Name: "reprovision", RID: "9"}.Topic(), "$iothub/methods/POST/reprovision/?$rid=9"},
		{MethodResponse("9", 200), "$iothub/methods/res/200/?$rid=9"},
		{stream, "$iothub/streams/POST/ssh/?$rid=7&$url=wss%3A%2F%2Fsgw.local%3A443%2Fbridges%2Fhub%2Fdev1%2Fabc%3Fx%3D1&$auth=tok_-.~"},
		{StreamResponse("7", StreamAccept), "$iothub/streams/res/200/?$rid=7"},
		{StreamResponse("7", StreamReject), "$iothub/streams/res/400/?$rid=7"},
		{DPSRegister("1"), "$dps/registrations/PUT/iotdps-register/?$rid=1"},
		{DPSPoll("2", "4.0e2d5c3b.abc"), "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=4.0e2d5c3b.abc"},
		{DPSResponse{Status: 202, RID: "2", RetryAfter: "3"}.Topic(), "$dps/registrations/res/202/?$rid=2&retry-after=3"},
		{DPSResponse{Status: 200, RID: "2"}.Topic(), "$dps/registrations/res/200/?$rid=2"},
		{HubUser{Host: "hub.azure-devices.net", DeviceID: "dev1", ClientType: "porthole/1.0 (linux; arm64)"}.Username(),
			"hub.azure-devices.net/dev1/?api-version=2020-09-30&DeviceClientType=porthole%2F1.0%20%28linux%3B%20arm64%29"},
		{HubUser{Host: "h", DeviceID: "d", ModuleID: "m", APIVersion: "2021-04-12", ClientType: "p", ModelID: "dtmi:com:x;1"}.Username(),
			"h/d/m/?api-version=2021-04-12&DeviceClientType=p&model-id=dtmi%3Acom%3Ax%3B1"},
		{DPSUser{IDScope: "0ne00000001", RegistrationID: "dev1", ClientVersion: "porthole/1.0"}.Username(),
			"0ne00000001/registrations/dev1/api-version=2021-06-01&ClientVersion=porthole%2F1.0"},
		{ClientID("d", ""), "d"},
		{ClientID("d", "m"), "d/m"},
		{SubTwinResponses, "$iothub/twin/res/#"},
		{SubTwinDesired, "$iothub/twin/PATCH/properties/desired/#"},
		{SubMethods, "$iothub/methods/POST/#"},
		{SubStreamRequests, "$iothub/streams/POST/#"},
		{SubStreamResponses, "$iothub/streams/res/#"},
		{SubDPSResponses, "$dps/registrations/res/#"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%d:\n got  %s\n want %s", i, tt.got, tt.want)
		}
	}
}

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"abcXYZ019-._", "abcXYZ019-._"},
		{"$.ct", "%24.ct"},
		{"a b+c", "a%20b%2Bc"},
		{"~'!()*", "%7E%27%21%28%29%2A"},
		{"é", "%C3%A9"},
		{"\x00\xff", "%00%FF"},
	}
	for _, tt := range tests {
		if got := Escape(tt.in); got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// Decoding: either hex case, '+' stays literal, raw bytes pass through.
	for in, want := range map[string]string{
		"%24.ct": "$.ct", "%2f%2F": "//", "a+b": "a+b", "%C3%a9": "é", "plain": "plain", "~!": "~!",
	} {
		if got, err := Unescape(in); err != nil || got != want {
			t.Errorf("Unescape(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"%", "%2", "%zz", "a%2", "%%41"} {
		if _, err := Unescape(bad); !errors.Is(err, ErrBadEscape) {
			t.Errorf("Unescape(%q) err = %v, want ErrBadEscape", bad, err)
		}
	}
}

func TestDecodeProperties(t *testing.T) {
	tests := []struct {
		in   string
		want Properties
	}{
		{"", Properties{}},
		// The C# SDK's own test vector (C# UrlEncodedDictionarySerializerTests).
		{"%24.to=%2Fdevices%2FdelMe%2Fmessages%2FdeviceBound&%24.ct=text%2Fplain%3B%20charset%3DUTF-8&%24.ce=utf-8",
			Properties{To: "/devices/delMe/messages/deviceBound", ContentType: "text/plain; charset=UTF-8", ContentEncoding: "utf-8"}},
		{"%24.mid=1&%24.cid=2&%24.uid=u&%24.exp=2024-01-01T00%3A00%3A00Z&%24.ctime=t&%24.on=o&%24.schema=s&%24.cdid=d&%24.cmid=m&%24.ifid=i&%24.sub=c",
			Properties{MessageID: "1", CorrelationID: "2", UserID: "u", ExpiryTimeUTC: "2024-01-01T00:00:00Z", CreationTimeUTC: "t",
				OutputName: "o", MessageSchema: "s", ConnectionDeviceID: "d", ConnectionModuleID: "m", InterfaceID: "i", ComponentName: "c"}},
		{"k&&v=1&empty=&%24.unknown=x&iothub-ack=full", Properties{User: []Property{{"k", ""}, {"v", "1"}, {"empty", ""}, {"$.unknown", "x"}, {"iothub-ack", "full"}}}},
		{"$.mid=raw-dollar", Properties{MessageID: "raw-dollar"}},
		{"a=b=c", Properties{User: []Property{{"a", "b=c"}}}},
	}
	for _, tt := range tests {
		got, err := DecodeProperties(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("DecodeProperties(%q) = %+v, %v\nwant %+v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"=v", "a=%zz", "%2=v"} {
		if _, err := DecodeProperties(bad); !errors.Is(err, ErrBadProperty) {
			t.Errorf("DecodeProperties(%q) err = %v, want ErrBadProperty", bad, err)
		}
	}
	for _, bad := range []Properties{{User: []Property{{"", "v"}}}, {User: []Property{{"$.mid", "v"}}}, {User: []Property{{"$x", "v"}}}} {
		if _, err := bad.Encode(); !errors.Is(err, ErrBadProperty) {
			t.Errorf("Encode(%+v) err = %v, want ErrBadProperty", bad, err)
		}
	}
}

func TestParseC2D(t *testing.T) {
	good := map[string]C2DMessage{
		"devices/dev1/messages/devicebound/":                         {DeviceID: "dev1"},
		"devices/dev1/messages/devicebound/%24.mid=1&k=v":            {DeviceID: "dev1", Properties: Properties{MessageID: "1", User: []Property{{"k", "v"}}}},
		"devices/dev1/messages/devicebound/k=v/":                     {DeviceID: "dev1", Properties: Properties{User: []Property{{"k", "v"}}}},
		"devices/d$'()=@/messages/devicebound/%24.to=%2Fdevices%2Fx": {DeviceID: "d$'()=@", Properties: Properties{To: "/devices/x"}},
	}
	for in, want := range good {
		got, err := ParseC2D(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseC2D(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "devices/", "devices//messages/devicebound/", "devices/a/b/messages/devicebound/",
		"devices/dev1/messages/events/", "x/dev1/messages/devicebound/", "devices/dev1/messages/devicebound/=x"} {
		if _, err := ParseC2D(bad); err == nil {
			t.Errorf("ParseC2D(%q) succeeded", bad)
		}
	}
}

func TestParseTwin(t *testing.T) {
	good := map[string]TwinResponse{
		"$iothub/twin/res/200/?$rid=1":                       {Status: 200, RID: "1"},
		"$iothub/twin/res/204/?$rid=ab-12&$version=7":        {Status: 204, RID: "ab-12", Version: 7, HasVersion: true},
		"$iothub/twin/res/204/?$version=7&$rid=x&other=1":    {Status: 204, RID: "x", Version: 7, HasVersion: true},
		"$iothub/twin/res/429/?$rid=efc34c73-79ce-4054-9985": {Status: 429, RID: "efc34c73-79ce-4054-9985"},
	}
	for in, want := range good {
		got, err := ParseTwinResponse(in)
		if err != nil || got != want {
			t.Errorf("ParseTwinResponse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"$iothub/twin/res/200", "$iothub/twin/res/200/", "$iothub/twin/res/200/?", "$iothub/twin/res/20/?$rid=1",
		"$iothub/twin/res/abc/?$rid=1", "$iothub/twin/res/200/?$rid=1&$version=x", "$iothub/twin/res/200/x?$rid=1", "$iothub/twin/res//?$rid=1"} {
		if _, err := ParseTwinResponse(bad); !errors.Is(err, ErrBadTopic) {
			t.Errorf("ParseTwinResponse(%q) err = %v", bad, err)
		}
	}
	if v, ok, err := ParseTwinDesired("$iothub/twin/PATCH/properties/desired/?$version=12"); err != nil || !ok || v != 12 {
		t.Errorf("ParseTwinDesired = %v, %v, %v", v, ok, err)
	}
	if _, ok, err := ParseTwinDesired("$iothub/twin/PATCH/properties/desired/"); err != nil || ok {
		t.Errorf("ParseTwinDesired without version = %v, %v", ok, err)
	}
	for _, bad := range []string{"$iothub/twin/PATCH/properties/desired", "$iothub/twin/PATCH/properties/desired/x", "$iothub/twin/PATCH/properties/desired/?$version=-"} {
		if _, _, err := ParseTwinDesired(bad); !errors.Is(err, ErrBadTopic) {
			t.Errorf("ParseTwinDesired(%q) err = %v", bad, err)
		}
	}
}

func TestParseMethodAndStream(t *testing.T) {
	if got, err := ParseMethodRequest("$iothub/methods/POST/reprovision/?$rid=1f"); err != nil || got != (MethodRequest{"reprovision", "1f"}) {
		t.Errorf("ParseMethodRequest = %+v, %v", got, err)
	}
	for _, bad := range []string{"$iothub/methods/POST/", "$iothub/methods/POST/x", "$iothub/methods/POST//?$rid=1", "$iothub/methods/POST/x/?", "$iothub/methods/POST/a/b/?$rid=1"} {
		if _, err := ParseMethodRequest(bad); !errors.Is(err, ErrBadTopic) {
			t.Errorf("ParseMethodRequest(%q) err = %v", bad, err)
		}
	}
	good := map[string]StreamRequest{
		"$iothub/streams/POST/ssh/?$rid=7&$url=wss%3A%2F%2Fh%3A443%2Fb%2Fd&$auth=t0k":        {"ssh", "7", "wss://h:443/b/d", "t0k"},
		"$iothub/streams/POST/ssh/?$auth=a%2Fb&$ip=10.0.0.1&$url=wss%3A%2F%2Fh%3A443&$rid=1": {"ssh", "1", "wss://h:443", "a%2Fb"}, // $auth stays raw
		"$iothub/streams/POST/s/?$rid=1&$url=u&$auth=tok==":                                  {"s", "1", "u", "tok=="},
	}
	for in, want := range good {
		got, err := ParseStreamRequest(in)
		if err != nil || got != want {
			t.Errorf("ParseStreamRequest(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{
		"$iothub/streams/POST/ssh/?$url=u&$auth=a", // no $rid
		"$iothub/streams/POST/ssh/?$rid=1&$auth=a", // no $url
		"$iothub/streams/POST/ssh/?$rid=1&$url=u",  // no $auth
		"$iothub/streams/POST/ssh/?$rid=1&$url=%zz&$auth=a",
		"$iothub/streams/POST/?$rid=1&$url=u&$auth=a",
		"$iothub/streams/res/200/?$rid=1",
	} {
		if _, err := ParseStreamRequest(bad); err == nil {
			t.Errorf("ParseStreamRequest(%q) succeeded", bad)
		}
	}
	for _, bad := range []StreamRequest{{Name: "a/b", RID: "1", URL: "u", Auth: "a"}, {Name: "s", RID: "1", URL: "u", Auth: "a&b"}, {Name: "s", RID: "", URL: "u", Auth: "a"}} {
		if _, err := bad.Topic(); err == nil {
			t.Errorf("Topic(%+v) succeeded", bad)
		}
	}
}

func TestParseDPSResponse(t *testing.T) {
	good := map[string]DPSResponse{
		"$dps/registrations/res/202/?$rid=1&retry-after=3": {202, "1", "3"},
		"$dps/registrations/res/200/?$rid=abc":             {200, "abc", ""},
		"$dps/registrations/res/429/?Retry-After=5&$rid=9": {429, "9", "5"},
	}
	for in, want := range good {
		got, err := ParseDPSResponse(in)
		if err != nil || got != want {
			t.Errorf("ParseDPSResponse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"$dps/registrations/res/202/?retry-after=3", "$dps/registrations/res/2x2/?$rid=1", "$dps/registrations/res/202", "$iothub/twin/res/200/?$rid=1"} {
		if _, err := ParseDPSResponse(bad); !errors.Is(err, ErrBadTopic) {
			t.Errorf("ParseDPSResponse(%q) err = %v", bad, err)
		}
	}
}

func TestValidateID(t *testing.T) {
	for _, ok := range []string{"dev1", "a-b:c.d%e_f*g?h!i(j)k,l=m@n;o$p'q", string(make128('x'))} {
		if err := ValidateID(ok); err != nil {
			t.Errorf("ValidateID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/b", "a+b", "a#b", "a b", "é", "a&b", string(make128('x')) + "x"} {
		if err := ValidateID(bad); !errors.Is(err, ErrBadID) {
			t.Errorf("ValidateID(%q) = %v", bad, err)
		}
	}
}

func make128(c byte) []byte {
	b := make([]byte, 128)
	for i := range b {
		b[i] = c
	}
	return b
}
