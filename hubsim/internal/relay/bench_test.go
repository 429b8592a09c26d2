package relay

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/porthole-iot/porthole/sdk/stream"
)

// BenchmarkRelay sends 64 KiB per op from a service Conn to a device Conn
// through the relay, next to the same Conns connected directly (one TLS
// WebSocket hop, no relay) as a baseline. allocs/op counts the clients and
// the relay together.
func BenchmarkRelay(b *testing.B) {
	payload := make([]byte, 64<<10)
	run := func(b *testing.B, w, r *stream.Conn) {
		done := make(chan int64, 1)
		go func() {
			n, _ := io.Copy(io.Discard, r)
			done <- n
		}()
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := w.Write(payload); err != nil {
				b.Fatal(err)
			}
		}
		w.Close()
		if n := <-done; n != int64(b.N)*int64(len(payload)) {
			b.Fatalf("received %d bytes, want %d", n, int64(b.N)*int64(len(payload)))
		}
	}
	b.Run("direct", func(b *testing.B) {
		conns := make(chan *websocket.Conn, 1)
		up := websocket.Upgrader{WriteBufferSize: maxFramePayload + 1}
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := up.Upgrade(w, r, nil)
			if err == nil {
				conns <- ws
			}
		}))
		defer srv.Close()
		e := &env{srv: srv}
		c, err := stream.Dial(context.Background(), "wss"+strings.TrimPrefix(srv.URL, "https")+"/x", "t", stream.DialOptions{TLSConfig: e.tlsConfig()})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		s := stream.NewConn(<-conns)
		defer s.Close()
		run(b, c, s)
	})
	b.Run("relay", func(b *testing.B) {
		e := newEnv(b, Config{})
		tk := e.create(b, StreamSpec{})
		dev := e.mustDial(b, tk.URL, tk.DeviceToken)
		svc := e.mustDial(b, tk.URL, tk.ServiceToken)
		run(b, svc, dev)
	})
}
