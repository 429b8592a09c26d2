package retry

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Kind says what to do after a failed attempt.
type Kind uint8

const (
	// Permanent: do not retry; return the error to the caller.
	Permanent Kind = iota + 1
	// After: the server asked for a specific delay (429 + Retry-After);
	// Decision.Wait holds it.
	After
	// Backoff: a transient failure; wait for the policy's exponential,
	// jittered backoff.
	Backoff
)

func (k Kind) String() string {
	switch k {
	case Permanent:
		return "permanent"
	case After:
		return "after"
	case Backoff:
		return "backoff"
	default:
		return fmt.Sprintf("Kind(%d)", uint8(k))
	}
}

// Decision is the outcome of [Classify].
type Decision struct {
	Kind Kind
	// Wait is the server-requested delay when Kind is After (before the
	// policy's floor and jitter are applied); zero otherwise.
	Wait time.Duration
}

// StatusCoder is implemented by errors that carry an HTTP status code (or an
// MQTT response status such as the one in `$dps/registrations/res/<status>`
// or `$iothub/twin/res/<status>`, which use the HTTP numbering).
type StatusCoder interface {
	HTTPStatus() int
}

// RetryAfterer is implemented by errors that carry a server-requested delay,
// parsed from a Retry-After header or a `retry-after=` topic parameter.
// ok is false when the server sent none.
//
// The method is deliberately not called RetryAfter, so that error structs can
// keep a field of that name.
type RetryAfterer interface {
	RetryAfterHint() (d time.Duration, ok bool)
}

// Classify decides whether err is worth retrying. The rules are listed in
// the package documentation. A nil error classifies as Permanent (there is
// nothing to retry). Unknown errors are Permanent: a package that produces
// transient errors of its own must make them recognisable (implement
// StatusCoder, wrap a net error with %w, or use [Transient]).
func Classify(err error) Decision {
	if err == nil {
		return Decision{Kind: Permanent}
	}
	// Context errors first: context.DeadlineExceeded also claims to be a
	// net.Error timeout, but the caller's own deadline must never be retried.
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return Decision{Kind: Permanent}
	}
	var perm *backoff.PermanentError
	if errors.As(err, &perm) {
		return Decision{Kind: Permanent}
	}
	var tr *transientError
	if errors.As(err, &tr) {
		return Decision{Kind: Backoff}
	}
	var sc StatusCoder
	if errors.As(err, &sc) {
		return classifyStatus(sc.HTTPStatus(), err)
	}
	return classifyTransport(err)
}

func classifyStatus(code int, err error) Decision {
	switch {
	case code == http.StatusTooManyRequests:
		var ra RetryAfterer
		if errors.As(err, &ra) {
			if d, ok := ra.RetryAfterHint(); ok && d >= 0 {
				return Decision{Kind: After, Wait: d}
			}
		}
		// No hint: the guidance asks for a random delay with backoff.
		return Decision{Kind: Backoff}
	case code == http.StatusRequestTimeout:
		// A timeout seen by the server is as transient as one seen by us.
		return Decision{Kind: Backoff}
	case code >= 500 && code <= 599:
		return Decision{Kind: Backoff}
	default:
		return Decision{Kind: Permanent}
	}
}

func classifyTransport(err error) Decision {
	// Certificate problems: an expired/not-yet-valid certificate on a
	// device is usually a clock that NTP has not set yet, so it heals; an
	// unknown authority or a wrong host name does not.
	var certInvalid x509.CertificateInvalidError
	if errors.As(err, &certInvalid) {
		if certInvalid.Reason == x509.Expired {
			return Decision{Kind: Backoff}
		}
		return Decision{Kind: Permanent}
	}
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	if errors.As(err, &unknownCA) || errors.As(err, &hostErr) {
		return Decision{Kind: Permanent}
	}

	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return Decision{Kind: Backoff}
	}
	for _, errno := range transientErrnos {
		if errors.Is(err, errno) {
			return Decision{Kind: Backoff}
		}
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &opErr) || errors.As(err, &dnsErr) {
		return Decision{Kind: Backoff}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return Decision{Kind: Backoff}
	}
	return Decision{Kind: Permanent}
}

var transientErrnos = []error{
	syscall.ECONNREFUSED,
	syscall.ECONNRESET,
	syscall.ECONNABORTED,
	syscall.EPIPE,
	syscall.ETIMEDOUT,
	syscall.EHOSTUNREACH,
	syscall.ENETUNREACH,
	syscall.ENETDOWN,
}

// Transient marks err as retryable with backoff, for failures that Classify
// cannot recognise by type (for example "connection lost" reported by an
// MQTT library as a plain string). errors.Is/As still see err. Transient(nil)
// is nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &transientError{err: err}
}

type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// StatusError is a ready-made error for a non-success HTTP (or HTTP-numbered
// MQTT) response. Packages with richer error types implement StatusCoder and
// RetryAfterer themselves instead.
type StatusError struct {
	Code int // HTTP status, e.g. 429
	// RetryAfter is the parsed Retry-After; meaningful when HasRetryAfter.
	RetryAfter    time.Duration
	HasRetryAfter bool
	Err           error // optional detail (e.g. the service's error body)
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("status %d %s", e.Code, http.StatusText(e.Code))
	if e.HasRetryAfter {
		msg += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the detail error.
func (e *StatusError) Unwrap() error { return e.Err }

// HTTPStatus implements StatusCoder.
func (e *StatusError) HTTPStatus() int { return e.Code }

// RetryAfterHint implements RetryAfterer.
func (e *StatusError) RetryAfterHint() (time.Duration, bool) {
	return e.RetryAfter, e.HasRetryAfter
}

// FromResponse returns nil for a 2xx response and otherwise a *StatusError
// carrying the status and the parsed Retry-After header. It does not read or
// close the body.
func FromResponse(resp *http.Response, now time.Time) error {
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	e := &StatusError{Code: resp.StatusCode}
	// Header name per RFC 9110 §10.2.3; DPS sends it lower-case
	// (Azure/azure-iot-sdk-node provisioning/transport/http/src/http.ts reads
	// 'retry-after'); Go canonicalises either spelling.
	if h := resp.Header.Get("Retry-After"); h != "" {
		e.RetryAfter, e.HasRetryAfter = ParseRetryAfter(h, now)
	}
	return e
}
