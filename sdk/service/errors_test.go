package service

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseError(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   Error
	}{
		{
			name: "hubsim shape", status: 404, header: http.Header{"Iothub-Errorcode": {"DeviceNotOnline"}},
			body: `{"Message":"ErrorCode:DeviceNotOnline;device dev1 is not connected","ExceptionMessage":"Tracking ID:x"}`,
			want: Error{StatusCode: 404, ErrorCode: "DeviceNotOnline", Message: "device dev1 is not connected"},
		},
		{
			name: "code only in message", status: 400,
			body: `{"Message":"ErrorCode:ArgumentInvalid;bad twin","ExceptionMessage":""}`,
			want: Error{StatusCode: 400, ErrorCode: "ArgumentInvalid", Message: "bad twin"},
		},
		{
			name: "azure nested json", status: 404,
			body: `{"Message":"{\"errorCode\":404103,\"trackingId\":\"t1\",\"message\":\"Timed out\",\"timestampUtc\":\"2024-01-01T00:00:00Z\"}","ExceptionMessage":""}`,
			want: Error{StatusCode: 404, ErrorCode: "DeviceNotOnline", ErrorNumber: 404103, TrackingID: "t1", Message: "Timed out"},
		},
		{
			name: "header name wins over number", status: 404, header: http.Header{"Iothub-Errorcode": {"DeviceNotOnline"}},
			body: `{"Message":"{\"errorCode\":404103,\"message\":\"x\"}"}`,
			want: Error{StatusCode: 404, ErrorCode: "DeviceNotOnline", ErrorNumber: 404103, Message: "x"},
		},
		{
			name: "escaped twice", status: 429,
			body: `"{\"errorCode\":429001,\"message\":\"slow\"}"`,
			want: Error{StatusCode: 429, ErrorCode: "ThrottlingException", ErrorNumber: 429001, Message: "slow"},
		},
		{
			name: "dps root", status: 404, header: http.Header{"X-Ms-Error-Code": {"404201"}},
			body: `{"errorCode":404201,"trackingId":"t2","message":"not found","timestampUtc":"x"}`,
			want: Error{StatusCode: 404, ErrorCode: "404201", ErrorNumber: 404201, TrackingID: "t2", Message: "not found"},
		},
		{
			name: "string error code", status: 400,
			body: `{"errorCode":"IotHubFormatError","message":"bad json"}`,
			want: Error{StatusCode: 400, ErrorCode: "IotHubFormatError", Message: "bad json"},
		},
		{
			name: "numeric string error code", status: 412,
			body: `{"ErrorCode":"412001","Message":"etag"}`,
			want: Error{StatusCode: 412, ErrorCode: "PreconditionFailed", ErrorNumber: 412001, Message: "etag"},
		},
		{
			name: "retry-after", status: 429, header: http.Header{"Retry-After": {"12"}},
			want: Error{StatusCode: 429, RetryAfter: 12 * time.Second, HasRetryAfter: true},
		},
		{
			name: "retry-after date", status: 503, header: http.Header{"Retry-After": {"Mon, 01 Jan 2024 00:00:30 GMT"}},
			want: Error{StatusCode: 503, RetryAfter: 30 * time.Second, HasRetryAfter: true},
		},
		{
			name: "bad retry-after", status: 429, header: http.Header{"Retry-After": {"soon"}},
			want: Error{StatusCode: 429},
		},
		{
			name: "text body", status: 502, body: "Bad gateway\r\n\tupstream",
			want: Error{StatusCode: 502, Message: "Bad gateway   upstream"},
		},
		{name: "empty", status: 500, want: Error{StatusCode: 500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseError(tt.status, tt.header, []byte(tt.body), now)
			if *got != tt.want {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestParseErrorBoundsMessage(t *testing.T) {
	long := strings.Repeat("é", 1000)
	e := parseError(500, nil, []byte(`{"Message":"`+long+`"}`), time.Now())
	if len(e.Message) > maxMessage+len("…") || !utf8.ValidString(e.Message) {
		t.Errorf("message of %d bytes, valid %v", len(e.Message), utf8.ValidString(e.Message))
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{StatusCode: 404, ErrorCode: "DeviceNotOnline", ErrorNumber: 404103, Message: "gone"}, "404 Not Found (DeviceNotOnline 404103): gone"},
		{Error{StatusCode: 404, ErrorCode: "404201", ErrorNumber: 404201}, "404 Not Found (404201)"},
		{Error{StatusCode: 599}, "599"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%q, want %q", got, tt.want)
		}
	}
}

func TestErrorIs(t *testing.T) {
	sentinels := []error{ErrDeviceNotOnline, ErrNotFound, ErrThrottled, ErrTimeout, ErrUnauthorized, ErrConflict, ErrPreconditionFailed, ErrStreamRejected}
	tests := []struct {
		e    Error
		want []error
	}{
		{Error{StatusCode: 404, ErrorCode: "DeviceNotOnline"}, []error{ErrDeviceNotOnline}},
		{Error{StatusCode: 404, ErrorNumber: 404103}, []error{ErrDeviceNotOnline}},
		{Error{StatusCode: 404, ErrorCode: "DeviceNotFound"}, []error{ErrNotFound}},
		{Error{StatusCode: 429}, []error{ErrThrottled}},
		{Error{StatusCode: 504}, []error{ErrTimeout}},
		{Error{StatusCode: 401}, []error{ErrUnauthorized}},
		{Error{StatusCode: 403}, []error{ErrUnauthorized}},
		{Error{StatusCode: 409}, []error{ErrConflict}},
		{Error{StatusCode: 412}, []error{ErrPreconditionFailed}},
		{Error{StatusCode: 500}, nil},
	}
	for _, tt := range tests {
		for _, s := range sentinels {
			want := false
			for _, w := range tt.want {
				want = want || w == s
			}
			if got := errors.Is(&tt.e, s); got != want {
				t.Errorf("%+v Is %v = %v", tt.e, s, got)
			}
		}
	}
}

func FuzzParseError(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, `"x"`, `{"Message":"ErrorCode:A;b"}`,
		`{"Message":"{\"errorCode\":404103,\"message\":\"m\"}"}`,
		`"{\"errorCode\":1}"`, `{"errorCode":"x","message":7}`,
		`"\"\\\"{\\\\\\\"errorCode\\\\\\\":1}\\\"\""`, "\xff\xfe",
	} {
		f.Add(404, s, "DeviceNotOnline", "12")
	}
	f.Fuzz(func(t *testing.T, status int, body, code, retryAfter string) {
		h := http.Header{}
		h.Set("iothub-errorcode", code)
		h.Set("Retry-After", retryAfter)
		e := parseError(status, h, []byte(body), time.Unix(0, 0))
		if e.StatusCode != status {
			t.Fatalf("status %d, want %d", e.StatusCode, status)
		}
		if len(e.Message) > maxMessage+len("…") || !utf8.ValidString(e.Message) {
			t.Fatalf("message %q", e.Message)
		}
		if strings.ContainsFunc(e.Message, func(r rune) bool { return r < 0x20 }) {
			t.Fatalf("control characters in %q", e.Message)
		}
		if e.HasRetryAfter && e.RetryAfter < 0 {
			t.Fatalf("negative retry-after %v", e.RetryAfter)
		}
		_ = e.Error()
	})
}
