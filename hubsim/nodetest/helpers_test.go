package nodetest

import (
	"errors"
	"slices"
	"testing"
)

func TestParseResult(t *testing.T) {
	tests := []struct {
		name    string
		stdout  string
		wantOK  bool
		want    string // Result or Step
		wantErr bool
	}{
		{"success", "NODETEST-RESULT {\"ok\":true,\"result\":{\"a\":1}}\n", true, `{"a":1}`, false},
		{"noise around", "sdk says hi\nNODETEST-RESULT {\"ok\":true,\"result\":null}\ntrailing\n", true, "null", false},
		{"no newline", "NODETEST-RESULT {\"ok\":true,\"result\":2}", true, "2", false},
		{"last wins", "NODETEST-RESULT {\"ok\":true,\"result\":1}\nNODETEST-RESULT {\"ok\":false,\"step\":\"open\",\"error\":{}}\n", false, "open", false},
		{"failure", "NODETEST-RESULT {\"ok\":false,\"step\":\"register\",\"error\":{\"message\":\"x\"}}\n", false, "register", false},
		{"failure without step", "NODETEST-RESULT {\"ok\":false}\n", false, "", true},
		{"empty", "", false, "", true},
		{"marker not at line start", "x NODETEST-RESULT {\"ok\":true}\n", false, "", true},
		{"bad json", "NODETEST-RESULT {\"ok\":tru\n", false, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseResult([]byte(tt.stdout))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got := r.Step
			if r.OK {
				got = string(r.Result)
			}
			if r.OK != tt.wantOK || got != tt.want {
				t.Errorf("ok %v %q, want %v %q", r.OK, got, tt.wantOK, tt.want)
			}
		})
	}
	if _, err := parseResult(nil); !errors.Is(err, errNoResult) {
		t.Errorf("nil output: %v, want errNoResult", err)
	}
}

func FuzzParseResult(f *testing.F) {
	f.Add([]byte("NODETEST-RESULT {\"ok\":true,\"result\":{\"a\":[1,2]}}\n"))
	f.Add([]byte("noise\nNODETEST-RESULT {\"ok\":false,\"step\":\"s\",\"error\":{\"statusCode\":404}}"))
	f.Add([]byte("NODETEST-RESULT \n"))
	f.Add([]byte("NODETEST-RESULT {\"ok\":true}\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseResult(b)
		if err != nil {
			return
		}
		if !r.OK && r.Step == "" {
			t.Fatalf("accepted a failure without a step: %q", b)
		}
	})
}

func TestCleanEnv(t *testing.T) {
	in := []string{"PATH=p", "https_proxy=http://p", "HTTP_PROXY=http://p", "NODE_OPTIONS=--inspect", "NODE_PATH=x", "HOME=h", "CI=true"}
	got := cleanEnv(in)
	want := []string{"PATH=p", "HOME=h", "CI=true", "NO_PROXY=*"}
	if !slices.Equal(got, want) {
		t.Errorf("cleanEnv = %v, want %v", got, want)
	}
	if in[1] != "https_proxy=http://p" {
		t.Error("cleanEnv modified its input")
	}
}

func TestSDKErrorCode(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"Message":"ErrorCode:DeviceNotOnline;hub: device not online","ExceptionMessage":"Tracking ID:x"}`, "DeviceNotOnline"},
		{`{"errorCode":404201,"trackingId":"t","message":"not found"}`, "404201"},
		{`{"Message":"{\"errorCode\":404103,\"message\":\"Timed out\"}","ExceptionMessage":""}`, "404103"},
		{`{"Message":"plain text"}`, ""},
		{`not json`, ""},
		{``, ""},
	}
	for _, tt := range tests {
		if got := (sdkError{ResponseBody: tt.body}).errorCode(); got != tt.want {
			t.Errorf("errorCode(%s) = %q, want %q", tt.body, got, tt.want)
		}
	}
}
