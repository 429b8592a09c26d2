package dps

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHTTPSReusesOneConnection: register and its polls go over one TLS
// connection, which is closed when Register returns; a server that asks
// for Connection: close gets a new connection for each request.
func TestHTTPSReusesOneConnection(t *testing.T) {
	for _, tt := range []struct {
		name      string
		keepAlive bool
		wantConns int
	}{
		{"keep-alive", true, 1},
		{"connection-close", false, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			clients := map[string]bool{} // client address: one per connection
			f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
				mu.Lock()
				clients[r.RemoteAddr] = true
				mu.Unlock()
				if n < 2 {
					reply(w, 202, "", assigning("op1"))
					return
				}
				reply(w, 200, "", assigned("op1", nil))
			})
			f.srv.Config.SetKeepAlivesEnabled(tt.keepAlive)
			c := mustNew(t, f.config(newInstantClock()))
			if _, err := c.Register(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if got := len(clients); got != tt.wantConns {
				t.Errorf("%d connections for 3 requests, want %d", got, tt.wantConns)
			}
			c.https.mu.Lock()
			defer c.https.mu.Unlock()
			if c.https.idle != nil {
				t.Error("a connection is still kept after Register returned")
			}
		})
	}
}

// TestHTTPSStaleConnectionIsRedialed: a server that drops the kept-alive
// connection after each answer (without saying so) costs no failed
// attempt: the request is sent again on a new connection, as net/http does.
func TestHTTPSStaleConnectionIsRedialed(t *testing.T) {
	cert := httptest.NewUnstartedServer(nil)
	cert.StartTLS()
	pool := x509.NewCertPool()
	pool.AddCert(cert.Certificate())
	tlsConf := cert.TLS.Clone()
	cert.Close()

	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsConf)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns, requests atomic.Int32
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				n := requests.Add(1)
				rec := httptest.NewRecorder()
				if n == 1 {
					reply(rec, 202, "", assigning("op1"))
				} else {
					reply(rec, 200, "", assigned("op1", nil))
				}
				resp := rec.Result()
				resp.Request = req
				resp.ContentLength = int64(rec.Body.Len()) // known length: no Connection: close
				resp.Write(conn)                           // keep-alive answer, then the connection is dropped
			}()
		}
	}()

	clk := newInstantClock()
	cfg := Config{
		GlobalEndpoint: ln.Addr().String(),
		IDScope:        testScope,
		RegistrationID: testRegID,
		SymmetricKey:   testKey,
		RootCAs:        pool,
		Retry:          exactPolicy(clk),
		Now:            func() time.Time { return testNow },
	}
	res, err := mustNew(t, cfg).Register(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Assigned() {
		t.Errorf("not assigned: %+v", res)
	}
	if got := requests.Load(); got != 2 {
		t.Errorf("%d requests answered, want 2 (register, one poll)", got)
	}
	if got := conns.Load(); got != 2 {
		t.Errorf("%d connections, want 2 (register; the poll again after the dropped one)", got)
	}
	// Only the poll interval was waited: the dropped connection cost no retry.
	if got := clk.Waits(); len(got) != 1 {
		t.Errorf("waits %v, want only the poll interval", got)
	}
}
