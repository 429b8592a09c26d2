package stream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// writePool lends the test server's connections their write buffers, as a
// server with many idle streams would.
var writePool = &sync.Pool{}

// wsServer is a TLS WebSocket server on loopback that hands every accepted
// connection to the test.
type wsServer struct {
	srv   *httptest.Server
	conns chan *websocket.Conn
	reqs  chan *http.Request

	mu  sync.Mutex
	all []*websocket.Conn // guarded by mu; closed at cleanup
}

// newWSServer starts the server. If status is non-nil and returns non-zero
// for a request, the server refuses the upgrade with that status.
func newWSServer(tb testing.TB, status func(*http.Request) int) *wsServer {
	tb.Helper()
	s := &wsServer{conns: make(chan *websocket.Conn, 16), reqs: make(chan *http.Request, 16)}
	up := websocket.Upgrader{
		ReadBufferSize:  MaxFramePayload,
		WriteBufferSize: writeBufferSize,
		WriteBufferPool: writePool,
	}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.reqs <- r:
		default:
		}
		if status != nil {
			if code := status(r); code != 0 {
				http.Error(w, http.StatusText(code), code)
				return
			}
		}
		var hdr http.Header
		if p := websocket.Subprotocols(r); len(p) > 0 {
			hdr = http.Header{"Sec-Websocket-Protocol": {p[0]}}
		}
		ws, err := up.Upgrade(w, r, hdr)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.all = append(s.all, ws)
		s.mu.Unlock()
		s.conns <- ws
	}))
	tb.Cleanup(func() {
		s.mu.Lock()
		for _, c := range s.all {
			c.Close()
		}
		s.mu.Unlock()
		s.srv.Close()
	})
	return s
}

func (s *wsServer) url() string {
	return "wss" + strings.TrimPrefix(s.srv.URL, "https") + "/bridges/h/d/s/1"
}

func (s *wsServer) tlsConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(s.srv.Certificate())
	return &tls.Config{RootCAs: pool}
}

func (s *wsServer) accept(tb testing.TB) *websocket.Conn {
	tb.Helper()
	select {
	case ws := <-s.conns:
		return ws
	case <-time.After(10 * time.Second):
		tb.Fatal("server did not accept a connection")
		return nil
	}
}

// pair dials the server and returns the client Conn and the server's Conn.
func (s *wsServer) pair(tb testing.TB) (client, server *Conn) {
	tb.Helper()
	c, err := Dial(context.Background(), s.url(), "tok", DialOptions{TLSConfig: s.tlsConfig()})
	if err != nil {
		tb.Fatalf("Dial: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	sc := NewConn(s.accept(tb))
	tb.Cleanup(func() { sc.Close() })
	return c, sc
}
