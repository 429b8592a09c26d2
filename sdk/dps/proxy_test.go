package dps

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/porthole-iot/porthole/sdk/retry"
)

// TestProxyRefusals: the CONNECT carries the proxy credentials; a 407 is
// final, a 503 from the proxy is retried.
func TestProxyRefusals(t *testing.T) {
	for _, tc := range []struct {
		status    int
		wantTries int
	}{
		{http.StatusProxyAuthRequired, 1},
		{http.StatusServiceUnavailable, 2},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			var mu sync.Mutex
			var auths, targets []string
			proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				auths = append(auths, r.Header.Get("Proxy-Authorization"))
				targets = append(targets, r.Method+" "+r.Host)
				mu.Unlock()
				w.WriteHeader(tc.status)
			}))
			defer proxy.Close()
			pu, _ := url.Parse(proxy.URL)
			pu.User = url.UserPassword("dev", "s3cret")
			clk := newInstantClock()
			c := mustNew(t, Config{
				GlobalEndpoint: "dps.example", IDScope: testScope, RegistrationID: testRegID,
				SymmetricKey: testKey, Transport: TransportMQTT, ProxyURL: pu,
				Retry: retry.Policy{Clock: clk, MaxAttempts: 2, Rand: func() float64 { return 0 }},
			})
			_, err := c.Register(context.Background(), nil)
			if err == nil || !strings.Contains(err.Error(), http.StatusText(tc.status)) {
				t.Fatalf("err %v", err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Error("error shows the proxy password")
			}
			if tc.wantTries > 1 && !errors.Is(err, retry.ErrGaveUp) {
				t.Errorf("err %v, want a give-up after retries", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(targets) != tc.wantTries {
				t.Fatalf("%d CONNECTs, want %d", len(targets), tc.wantTries)
			}
			if targets[0] != "CONNECT dps.example:8883" || auths[0] != "Basic ZGV2OnMzY3JldA==" {
				t.Errorf("CONNECT %q with %q", targets[0], auths[0])
			}
		})
	}
}
