package dps

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestHTTPSSpeaksHTTP1 pins that the DPS client uses HTTP/1.1 even when the
// server offers HTTP/2 in ALPN. The agent never needs Go's bundled HTTP/2,
// so firmware builds may drop it with -tags nethttpomithttp2 without losing
// anything (agent/cmd/porthole-agent/SIZE.md).
func TestHTTPSSpeaksHTTP1(t *testing.T) {
	var proto atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(int32(r.ProtoMajor))
		_, _ = io.Copy(io.Discard, r.Body)
		st := assigned("", nil)["registrationState"]
		reply(w, 200, "", st)
	}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()

	// The server does speak HTTP/2 to a client that asks for it.
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	srv.Client().CloseIdleConnections()
	if proto.Load() != 2 {
		t.Skipf("no HTTP/2 in this build (HTTP/%d; -tags nethttpomithttp2?)", proto.Load())
	}

	f := &fakeDPS{srv: srv}
	c := mustNew(t, f.config(newInstantClock()))
	if _, err := c.Lookup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := proto.Load(); got != 1 {
		t.Errorf("DPS client spoke HTTP/%d, want HTTP/1.1", got)
	}
}
