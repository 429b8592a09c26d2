package dps

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/retry/retrytest"
)

func TestRegisterHTTPSFlow(t *testing.T) {
	f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch n {
		case 0:
			reply(w, 202, "3", assigning("op1"))
		case 1:
			reply(w, 202, "", assigning("op1"))
		default:
			reply(w, 200, "", assigned("op1", map[string]any{"payload": map[string]any{"hello": "back"}}))
		}
	})
	clk := newInstantClock()
	c := mustNew(t, f.config(clk))
	res, err := c.Register(context.Background(), map[string]string{"model": "gw-1"})
	if err != nil {
		t.Fatal(err)
	}
	want := Result{
		RegistrationID: testRegID, DeviceID: testRegID, AssignedHub: "hub-eu.example",
		Status: "assigned", Substatus: "initialAssignment", ETag: `"abc"`,
		CreatedAt: time.Date(2025, 3, 4, 5, 6, 7, 123456700, time.UTC),
		UpdatedAt: time.Date(2025, 3, 4, 5, 6, 8, 500000000, time.UTC),
	}
	if string(res.Payload) != `{"hello":"back"}` {
		t.Errorf("payload %s", res.Payload)
	}
	res.Payload = nil
	if !reflect.DeepEqual(*res, want) {
		t.Errorf("result\n got %+v\nwant %+v", *res, want)
	}
	if !res.Assigned() {
		t.Error("Assigned() false")
	}
	// Waits: the register's retry-after (3 s), then the default 2 s.
	if got := clk.Waits(); !slices.Equal(got, []time.Duration{3 * time.Second, 2 * time.Second}) {
		t.Errorf("poll waits %v", got)
	}

	reqs := f.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests", len(reqs))
	}
	wantLines := []string{
		"PUT /" + testScope + "/registrations/" + testRegID + "/register",
		"GET /" + testScope + "/registrations/" + testRegID + "/operations/op1",
		"GET /" + testScope + "/registrations/" + testRegID + "/operations/op1",
	}
	for i, r := range reqs {
		if got := r.Method + " " + r.Path; got != wantLines[i] {
			t.Errorf("request %d: %s, want %s", i, got, wantLines[i])
		}
		if r.RawQuery != "api-version=2021-06-01" {
			t.Errorf("request %d query %q", i, r.RawQuery)
		}
		if r.Header.Get("Accept") != "application/json" || r.Header.Get("User-Agent") != userAgent {
			t.Errorf("request %d headers %v", i, r.Header)
		}
		verifySAS(t, r.Header.Get("Authorization"))
	}
	if ct := reqs[0].Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("register content type %q", ct)
	}
	if got := string(reqs[0].Body); got != `{"registrationId":"dev-1","payload":{"model":"gw-1"}}` {
		t.Errorf("register body %s", got)
	}
	if len(reqs[1].Body) != 0 {
		t.Errorf("poll body %q", reqs[1].Body)
	}
}

func TestRegisterDirect200(t *testing.T) {
	f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 200, "", assigned("op9", nil))
	})
	clk := newInstantClock()
	res, err := mustNew(t, f.config(clk)).Register(context.Background(), nil)
	if err != nil || !res.Assigned() {
		t.Fatalf("res %+v err %v", res, err)
	}
	if len(clk.Waits()) != 0 || len(f.requests()) != 1 {
		t.Errorf("waits %v, %d requests", clk.Waits(), len(f.requests()))
	}
	if got := string(f.requests()[0].Body); got != `{"registrationId":"dev-1"}` {
		t.Errorf("body without payload: %s", got)
	}
}

func TestPollRetryAfterForms(t *testing.T) {
	httpDate := testNow.Add(9 * time.Second).Format(http.TimeFormat)
	for _, tc := range []struct {
		name, header string
		want         time.Duration
	}{
		{"seconds", "5", 5 * time.Second},
		{"http-date", httpDate, 9 * time.Second},
		{"zero raised to floor", "0", time.Second},
		{"date in the past", testNow.Add(-time.Hour).Format(http.TimeFormat), time.Second},
		{"garbage means default", "soon", DefaultPollInterval},
		{"negative means default", "-3", DefaultPollInterval},
		{"fraction means default", "1.5", DefaultPollInterval},
		{"huge capped", "100000", maxPollInterval},
		{"whitespace", " 4 ", 4 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 0 {
					reply(w, 202, tc.header, assigning("op"))
					return
				}
				reply(w, 200, "", assigned("op", nil))
			})
			clk := newInstantClock()
			if _, err := mustNew(t, f.config(clk)).Register(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			if got := clk.Waits(); !slices.Equal(got, []time.Duration{tc.want}) {
				t.Errorf("waits %v, want [%v]", got, tc.want)
			}
		})
	}
}

func TestThrottledWaitsRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name, header string
		want         time.Duration
	}{
		{"seconds", "7", 7 * time.Second},
		{"http-date", testNow.Add(11 * time.Second).Format(http.TimeFormat), 11 * time.Second},
		{"none: backoff floor", "", retry.DefaultMinBackoff},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
				switch n {
				case 0:
					w.Header().Set("x-ms-error-code", "429001")
					reply(w, 429, tc.header, `{"errorCode":429001,"trackingId":"t1","message":"throttled"}`)
				case 1:
					reply(w, 202, "1", assigning("op"))
				default:
					reply(w, 200, "", assigned("op", nil))
				}
			})
			clk := newInstantClock()
			if _, err := mustNew(t, f.config(clk)).Register(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			if got := clk.Waits(); !slices.Equal(got, []time.Duration{tc.want, time.Second}) {
				t.Errorf("waits %v, want [%v 1s]", got, tc.want)
			}
			if n := len(f.requests()); n != 3 {
				t.Errorf("%d requests", n)
			}
		})
	}
}

func TestThrottledWithDefaultJitterNeverEarly(t *testing.T) {
	f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			reply(w, 429, "4", "")
			return
		}
		reply(w, 200, "", assigned("op", nil))
	})
	clk := newInstantClock()
	cfg := f.config(clk)
	cfg.Retry = retry.Policy{Clock: clk, Rand: retrytest.Rand(7)}
	if _, err := mustNew(t, cfg).Register(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	w := clk.Waits()
	if len(w) != 1 || w[0] < 4*time.Second || w[0] > 4*time.Second+retry.DefaultRetryAfterJitter {
		t.Errorf("waits %v, want one in [4s, 5s]", w)
	}
}

func TestServerErrorsBackOff(t *testing.T) {
	f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch n {
		case 0:
			reply(w, 503, "", `{"errorCode":503000,"message":"busy"}`)
		case 1:
			reply(w, 202, "", assigning("op"))
		case 2:
			reply(w, 500, "", "")
		default:
			reply(w, 200, "", assigned("op", nil))
		}
	})
	clk := newInstantClock()
	if _, err := mustNew(t, f.config(clk)).Register(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	// 5xx waits the 5 s floor (Rand 0); the poll interval is the default.
	want := []time.Duration{5 * time.Second, DefaultPollInterval, 5 * time.Second}
	if got := clk.Waits(); !slices.Equal(got, want) {
		t.Errorf("waits %v, want %v", got, want)
	}
	// The failed poll was retried as a poll, not a new registration.
	reqs := f.requests()
	if len(reqs) != 4 || reqs[2].Method != "GET" || reqs[3].Method != "GET" {
		t.Errorf("requests %+v", reqs)
	}
}

func TestPermanentErrors(t *testing.T) {
	for _, tc := range []struct {
		name        string
		status      int
		header      map[string]string
		body        string
		wantCode    int
		wantTrack   string
		wantMessage string
	}{
		{"401 with body", 401, nil, `{"errorCode":401002,"trackingId":"abc","message":"Unauthorized","timestampUtc":"2025-01-01T00:00:00Z"}`, 401002, "abc", "Unauthorized"},
		{"404 header code only", 404, map[string]string{"x-ms-error-code": "404201"}, "", 404201, "", ""},
		{"400 body code wins over header", 400, map[string]string{"x-ms-error-code": "400999"}, `{"errorCode":400004,"message":"bad"}`, 400004, "", "bad"},
		{"403 non-JSON body", 403, nil, `<html>nope</html>`, 0, "", ""},
		{"409 quoted code", 409, nil, `{"errorCode":"409201","trackingId":"x"}`, 409201, "x", ""},
		{"412 wrong types", 412, nil, `{"errorCode":true,"trackingId":5,"message":"m"}`, 0, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				reply(w, tc.status, "", tc.body)
			})
			clk := newInstantClock()
			res, err := mustNew(t, f.config(clk)).Register(context.Background(), nil)
			var se *StatusError
			if !errors.As(err, &se) || res != nil {
				t.Fatalf("res %v err %v, want *StatusError", res, err)
			}
			if se.StatusCode != tc.status || se.ErrorCode != tc.wantCode || se.TrackingID != tc.wantTrack || se.Message != tc.wantMessage {
				t.Errorf("got %+v", *se)
			}
			if len(f.requests()) != 1 || len(clk.Waits()) != 0 {
				t.Errorf("a %d was retried: %d requests", tc.status, len(f.requests()))
			}
			if retry.Classify(err).Kind != retry.Permanent {
				t.Errorf("classified %v", retry.Classify(err))
			}
		})
	}
}

func TestStatusErrorText(t *testing.T) {
	e := &StatusError{StatusCode: 429, ErrorCode: 429001, TrackingID: "t", Message: "slow down", RetryAfter: 3 * time.Second, HasRetryAfter: true}
	if got, want := e.Error(), "status 429 Too Many Requests (error 429001, tracking id t) retry after 3s: slow down"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if d := retry.Classify(e); d.Kind != retry.After || d.Wait != 3*time.Second {
		t.Errorf("classify %+v", d)
	}
}

func TestTerminalFailures(t *testing.T) {
	for _, tc := range []struct {
		status  string
		want    error
		errCode int
	}{
		{"failed", ErrFailed, 400209},
		{"disabled", ErrDisabled, 0},
	} {
		t.Run(tc.status, func(t *testing.T) {
			f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 0 {
					reply(w, 202, "1", assigning("op"))
					return
				}
				st := map[string]any{"registrationId": testRegID, "status": tc.status}
				if tc.errCode != 0 {
					st["errorCode"], st["errorMessage"] = tc.errCode, "webhook said no"
				}
				reply(w, 200, "", map[string]any{"operationId": "op", "status": tc.status, "registrationState": st})
			})
			res, err := mustNew(t, f.config(newInstantClock())).Register(context.Background(), nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			var re *RegistrationError
			if !errors.As(err, &re) || re.Result != res || res == nil || res.Status != tc.status || res.ErrorCode != tc.errCode || res.Assigned() {
				t.Errorf("res %+v err %#v", res, err)
			}
			if other := map[error]error{ErrFailed: ErrDisabled, ErrDisabled: ErrFailed}[tc.want]; errors.Is(err, other) {
				t.Errorf("%v also matches %v", err, other)
			}
		})
	}
}

func TestUnassignedKeepsPolling(t *testing.T) {
	f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch n {
		case 0:
			reply(w, 202, "", assigning("op"))
		case 1:
			reply(w, 202, "", map[string]any{"status": "Unassigned"}) // no operationId: keep the last one
		default:
			reply(w, 200, "", assigned("op", nil))
		}
	})
	if _, err := mustNew(t, f.config(newInstantClock())).Register(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 3 || !strings.HasSuffix(reqs[2].Path, "/operations/op") {
		t.Errorf("requests %+v", reqs)
	}
}

func TestBadResponses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
	}{
		{"not JSON", 200, "<html>"},
		{"empty", 202, ""},
		{"no status", 202, `{"operationId":"op"}`},
		{"unknown status", 200, `{"operationId":"op","status":"exploded"}`},
		{"assigning without operation", 202, `{"status":"assigning"}`},
		{"assigned without hub", 200, `{"operationId":"op","status":"assigned","registrationState":{"status":"assigned"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
				reply(w, tc.status, "", tc.body)
			})
			_, err := mustNew(t, f.config(newInstantClock())).Register(context.Background(), nil)
			if !errors.Is(err, ErrBadResponse) {
				t.Fatalf("err %v", err)
			}
			if len(f.requests()) != 1 {
				t.Errorf("retried a bad response")
			}
		})
	}
}

func TestGiveUpAfterMaxAttempts(t *testing.T) {
	f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 503, "", "")
	})
	clk := newInstantClock()
	cfg := f.config(clk)
	cfg.Retry.MaxAttempts = 3
	_, err := mustNew(t, cfg).Register(context.Background(), nil)
	var se *StatusError
	if !errors.Is(err, retry.ErrGaveUp) || !errors.As(err, &se) || se.StatusCode != 503 {
		t.Fatalf("err %v", err)
	}
	if len(f.requests()) != 3 {
		t.Errorf("%d requests", len(f.requests()))
	}
}

func TestCancelDuringPollWait(t *testing.T) {
	f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 202, "30", assigning("op"))
	})
	clk := retrytest.NewClock(testNow)
	p, left, err := registerUntilWait(t, mustNew(t, f.config(clk)), clk)
	if err != nil {
		t.Fatal(err)
	}
	if left != 30*time.Second {
		t.Errorf("poll wait %v", left)
	}
	p.cancelAndWait(t)
	if len(clk.Pending()) != 0 {
		t.Errorf("timers left: %v", clk.Pending())
	}
}

func TestCancelDuringThrottleWait(t *testing.T) {
	f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 429, "120", "")
	})
	clk := retrytest.NewClock(testNow)
	p, left, err := registerUntilWait(t, mustNew(t, f.config(clk)), clk)
	if err != nil || left != 120*time.Second {
		t.Fatalf("wait %v %v", left, err)
	}
	p.cancelAndWait(t)
}

func TestAttemptTimeoutIsRetried(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			select { // hang until the client gives up on this attempt
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		reply(w, 200, "", assigned("op", nil))
	})
	clk := newInstantClock()
	cfg := f.config(clk)
	// Long enough that the second attempt (a new TLS connection) finishes
	// in time on a loaded machine; the first attempt hangs until it expires.
	cfg.RequestTimeout = 2 * time.Second
	if _, err := mustNew(t, cfg).Register(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if got := clk.Waits(); !slices.Equal(got, []time.Duration{5 * time.Second}) {
		t.Errorf("waits %v", got)
	}
}

func TestTransportFailureIsRetried(t *testing.T) {
	f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			// Drop the connection without an answer.
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close()
			return
		}
		reply(w, 200, "", assigned("op", nil))
	})
	clk := newInstantClock()
	if _, err := mustNew(t, f.config(clk)).Register(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if got := clk.Waits(); !slices.Equal(got, []time.Duration{5 * time.Second}) {
		t.Errorf("waits %v", got)
	}
}

func TestUntrustedServerIsPermanent(t *testing.T) {
	f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 200, "", assigned("op", nil))
	})
	clk := newInstantClock()
	cfg := f.config(clk)
	cfg.RootCAs = nil // system roots do not know httptest's CA
	_, err := mustNew(t, cfg).Register(context.Background(), nil)
	if err == nil || retry.Classify(err).Kind != retry.Permanent {
		t.Fatalf("err %v", err)
	}
	if len(clk.Waits()) != 0 {
		t.Errorf("retried: %v", clk.Waits())
	}
}

func TestLookupHTTPS(t *testing.T) {
	f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			reply(w, 503, "", "")
			return
		}
		st := assigned("", nil)["registrationState"]
		reply(w, 200, "", st)
	})
	clk := newInstantClock()
	res, err := mustNew(t, f.config(clk)).Lookup(context.Background())
	if err != nil || !res.Assigned() || res.AssignedHub != "hub-eu.example" {
		t.Fatalf("res %+v err %v", res, err)
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[1]
	if r.Method != "POST" || r.Path != "/"+testScope+"/registrations/"+testRegID || r.RawQuery != "api-version=2021-06-01" {
		t.Errorf("lookup request %s %s?%s", r.Method, r.Path, r.RawQuery)
	}
	if string(r.Body) != `{"registrationId":"dev-1"}` {
		t.Errorf("lookup body %s", r.Body)
	}
	verifySAS(t, r.Header.Get("Authorization"))
}

func TestLookupNotFound(t *testing.T) {
	f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 404, "", `{"errorCode":404201,"message":"registration not found"}`)
	})
	_, err := mustNew(t, f.config(newInstantClock())).Lookup(context.Background())
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 404 {
		t.Fatalf("err %v", err)
	}
}

func TestPayloadForms(t *testing.T) {
	type model struct {
		Model string `json:"model"`
	}
	for _, tc := range []struct {
		name    string
		payload any
		want    string
		wantErr bool
	}{
		{"nil", nil, `{"registrationId":"dev-1"}`, false},
		{"struct", model{"x"}, `{"registrationId":"dev-1","payload":{"model":"x"}}`, false},
		{"raw", json.RawMessage(` {"a":1} `), `{"registrationId":"dev-1","payload":{"a":1}}`, false},
		{"bytes", []byte(`[1,2]`), `{"registrationId":"dev-1","payload":[1,2]}`, false},
		{"string", "hi", `{"registrationId":"dev-1","payload":"hi"}`, false},
		{"empty raw", json.RawMessage(""), `{"registrationId":"dev-1"}`, false},
		{"invalid raw", json.RawMessage(`{`), "", true},
		{"unmarshalable", make(chan int), "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
				reply(w, 200, "", assigned("op", nil))
			})
			_, err := mustNew(t, f.config(newInstantClock())).Register(context.Background(), tc.payload)
			if tc.wantErr {
				if err == nil || len(f.requests()) != 0 {
					t.Fatalf("err %v, %d requests", err, len(f.requests()))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := string(f.requests()[0].Body); got != tc.want {
				t.Errorf("body %s, want %s", got, tc.want)
			}
		})
	}
}

func TestNoRedirects(t *testing.T) {
	f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		http.Redirect(w, r, "https://elsewhere.invalid/steal", http.StatusTemporaryRedirect)
	})
	_, err := mustNew(t, f.config(newInstantClock())).Register(context.Background(), nil)
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 307 || len(f.requests()) != 1 {
		t.Fatalf("err %v", err)
	}
	if strings.Contains(err.Error(), "sig=") {
		t.Error("error shows the token")
	}
}

// TestErrorTextNamesEachStepOnce: a failed call says "dps: <operation>:"
// once, then the status (it used to read "dps: register: dps: status 401",
// and "retry: gave up after 1 attempts" when one attempt was allowed).
func TestErrorTextNamesEachStepOnce(t *testing.T) {
	for _, tc := range []struct {
		name        string
		status      int
		body        string
		maxAttempts int
		want        string
	}{
		{"permanent", 401, `{"errorCode":401002,"trackingId":"abc","message":"Unauthorized"}`, 0,
			"dps: register: status 401 Unauthorized (error 401002, tracking id abc): Unauthorized"},
		{"transient, one attempt", 503, "", 1, "dps: register: status 503 Service Unavailable"},
		{"transient, three attempts", 503, "", 3, "dps: register: retry: gave up after 3 attempts in 10s: status 503 Service Unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, tc.status, "", tc.body) })
			cfg := f.config(newInstantClock())
			cfg.Retry.MaxAttempts = tc.maxAttempts
			_, err := mustNew(t, cfg).Register(context.Background(), nil)
			if err == nil || err.Error() != tc.want {
				t.Errorf("err %q\nwant %q", err, tc.want)
			}
		})
	}
}

// TestTransportErrorTextNamesEachStepOnce: a request that fails below
// HTTP says "dps: <operation>:" once and the request once (method and URL,
// as net/http's client words it), then the cause; it used to read
// `dps: register: dps: PUT /…/register: Put "https://…/register?…": EOF`.
func TestTransportErrorTextNamesEachStepOnce(t *testing.T) {
	drop := func(w http.ResponseWriter) {
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		conn.Close()
	}
	big := strings.Repeat(" ", 1<<20+1)
	for _, tc := range []struct {
		name    string
		lookup  bool
		refused bool
		handler func(w http.ResponseWriter, r *http.Request, n int)
		want    string // ADDR stands for the server's address
	}{
		{"connection dropped", false, false, func(w http.ResponseWriter, r *http.Request, n int) { drop(w) },
			`dps: register: Put "https://ADDR/0ne00000TST/registrations/dev-1/register?api-version=2021-06-01": EOF`},
		{"body cut short", false, false, func(w http.ResponseWriter, r *http.Request, n int) {
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			_, _ = io.WriteString(conn, "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"operat")
			conn.Close()
		}, `dps: register: Put "https://ADDR/0ne00000TST/registrations/dev-1/register?api-version=2021-06-01": reading body: unexpected EOF`},
		{"body too large", false, false, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 202, "", big) },
			`dps: register: Put "https://ADDR/0ne00000TST/registrations/dev-1/register?api-version=2021-06-01": unexpected response from DPS: response body larger than 1048576 bytes`},
		{"poll dropped", false, false, func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 0 {
				reply(w, 202, "", assigning("op1"))
				return
			}
			drop(w)
		}, `dps: poll: Get "https://ADDR/0ne00000TST/registrations/dev-1/operations/op1?api-version=2021-06-01": EOF`},
		{"lookup dropped", true, false, func(w http.ResponseWriter, r *http.Request, n int) { drop(w) },
			`dps: lookup: Post "https://ADDR/0ne00000TST/registrations/dev-1?api-version=2021-06-01": EOF`},
		// CAUSE is what dialling the closed port says here ("dial tcp …:
		// connect: connection refused"; qemu-user on MIPS passes the host's
		// errno number through untranslated).
		{"connection refused", false, true, nil,
			`dps: register: Put "https://ADDR/0ne00000TST/registrations/dev-1/register?api-version=2021-06-01": CAUSE`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.handler
			if h == nil {
				h = func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, "", assigned("op", nil)) }
			}
			f := newFakeDPS(t, h)
			cfg := f.config(newInstantClock())
			cfg.Retry.MaxAttempts = 1
			addr := f.srv.Listener.Addr().String()
			if tc.refused {
				// A port nothing listens on: the fake's, once it is closed.
				f.srv.Close()
			}
			cause := ""
			if tc.refused {
				_, derr := net.Dial("tcp", addr)
				if derr == nil {
					t.Fatal("the closed port accepted a connection")
				}
				cause = derr.Error()
			}
			c := mustNew(t, cfg)
			var err error
			if tc.lookup {
				_, err = c.Lookup(context.Background())
			} else {
				_, err = c.Register(context.Background(), nil)
			}
			if want := strings.NewReplacer("ADDR", addr, "CAUSE", cause).Replace(tc.want); err == nil || err.Error() != want {
				t.Errorf("err %q\nwant %q", err, want)
			}
		})
	}
}
