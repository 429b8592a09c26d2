package retry

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// otherStatus is a foreign error type taking part through the interfaces.
type otherStatus struct {
	code int
	ra   time.Duration
	has  bool
}

func (e otherStatus) Error() string                         { return fmt.Sprintf("other %d", e.code) }
func (e otherStatus) HTTPStatus() int                       { return e.code }
func (e otherStatus) RetryAfterHint() (time.Duration, bool) { return e.ra, e.has }

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	throttled := &StatusError{Code: 429, RetryAfter: 7 * time.Second, HasRetryAfter: true}
	tests := []struct {
		name string
		err  error
		want Decision
	}{
		{"nil", nil, Decision{Kind: Permanent}},
		{"429 with Retry-After", throttled, Decision{Kind: After, Wait: 7 * time.Second}},
		{"429 wrapped", fmt.Errorf("dps register: %w", throttled), Decision{Kind: After, Wait: 7 * time.Second}},
		{"429 zero Retry-After", &StatusError{Code: 429, HasRetryAfter: true}, Decision{Kind: After}},
		{"429 without Retry-After", &StatusError{Code: 429}, Decision{Kind: Backoff}},
		{"429 foreign type", otherStatus{code: 429, ra: time.Second, has: true}, Decision{Kind: After, Wait: time.Second}},
		{"408", &StatusError{Code: 408}, Decision{Kind: Backoff}},
		{"500", &StatusError{Code: 500}, Decision{Kind: Backoff}},
		{"503 foreign", otherStatus{code: 503}, Decision{Kind: Backoff}},
		{"599", &StatusError{Code: 599}, Decision{Kind: Backoff}},
		{"400", &StatusError{Code: 400}, Decision{Kind: Permanent}},
		{"401", &StatusError{Code: 401}, Decision{Kind: Permanent}},
		{"403", &StatusError{Code: 403}, Decision{Kind: Permanent}},
		{"404", &StatusError{Code: 404}, Decision{Kind: Permanent}},
		{"409", otherStatus{code: 409}, Decision{Kind: Permanent}},
		{"412", &StatusError{Code: 412}, Decision{Kind: Permanent}},
		{"302", &StatusError{Code: 302}, Decision{Kind: Permanent}},
		{"600", &StatusError{Code: 600}, Decision{Kind: Permanent}},
		{"context canceled", context.Canceled, Decision{Kind: Permanent}},
		{"deadline wrapped", fmt.Errorf("x: %w", context.DeadlineExceeded), Decision{Kind: Permanent}},
		{"backoff.Permanent of 503", backoff.Permanent(&StatusError{Code: 503}), Decision{Kind: Permanent}},
		{"Transient of plain", Transient(errors.New("connection lost")), Decision{Kind: Backoff}},
		{"plain error", errors.New("json: bad"), Decision{Kind: Permanent}},
		{"EOF", io.EOF, Decision{Kind: Backoff}},
		{"unexpected EOF wrapped", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), Decision{Kind: Backoff}},
		{"net.ErrClosed", net.ErrClosed, Decision{Kind: Backoff}},
		{"ECONNREFUSED in OpError", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, Decision{Kind: Backoff}},
		{"ECONNRESET bare", syscall.ECONNRESET, Decision{Kind: Backoff}},
		{"DNS", &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}, Decision{Kind: Backoff}},
		{"timeout in url.Error", &url.Error{Op: "Get", URL: "https://x", Err: timeoutErr{}}, Decision{Kind: Backoff}},
		{"url.Error non-network", &url.Error{Op: "Get", URL: "x", Err: errors.New("unsupported protocol scheme")}, Decision{Kind: Permanent}},
		{"cert expired", &url.Error{Op: "Get", URL: "x", Err: x509.CertificateInvalidError{Reason: x509.Expired}}, Decision{Kind: Backoff}},
		{"cert not authorized", x509.CertificateInvalidError{Reason: x509.NotAuthorizedToSign}, Decision{Kind: Permanent}},
		{"unknown CA", &url.Error{Op: "Get", URL: "x", Err: x509.UnknownAuthorityError{}}, Decision{Kind: Permanent}},
		{"hostname", x509.HostnameError{Host: "x"}, Decision{Kind: Permanent}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Fatalf("Classify(%v) = %+v, want %+v", tt.err, got, tt.want)
			}
		})
	}
}

func TestFromResponse(t *testing.T) {
	now := epoch
	tests := []struct {
		code  int
		hdr   string
		isNil bool
		want  Decision
	}{
		{200, "", true, Decision{}},
		{204, "", true, Decision{}},
		{429, "3", false, Decision{Kind: After, Wait: 3 * time.Second}},
		{429, now.Add(10 * time.Second).Format(http.TimeFormat), false, Decision{Kind: After, Wait: 10 * time.Second}},
		{429, "garbage", false, Decision{Kind: Backoff}},
		{503, "", false, Decision{Kind: Backoff}},
		{401, "", false, Decision{Kind: Permanent}},
	}
	for _, tt := range tests {
		resp := &http.Response{StatusCode: tt.code, Header: http.Header{}}
		if tt.hdr != "" {
			resp.Header.Set("retry-after", tt.hdr)
		}
		err := FromResponse(resp, now)
		if tt.isNil {
			if err != nil {
				t.Errorf("%d: got %v, want nil", tt.code, err)
			}
			continue
		}
		if got := Classify(err); got != tt.want {
			t.Errorf("%d %q: Classify = %+v, want %+v (err %v)", tt.code, tt.hdr, got, tt.want, err)
		}
	}
	e := &StatusError{Code: 429, RetryAfter: 2 * time.Second, HasRetryAfter: true, Err: errors.New("ThrottlingException")}
	if got, want := e.Error(), "status 429 Too Many Requests (retry after 2s): ThrottlingException"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{Permanent: "permanent", After: "after", Backoff: "backoff", 0: "Kind(0)"} {
		if k.String() != want {
			t.Errorf("%d.String() = %q", k, k.String())
		}
	}
}
