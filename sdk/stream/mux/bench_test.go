package mux

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/porthole-iot/porthole/sdk/stream"
)

// benchRelay is a minimal streaming endpoint for benchmarks: a TLS
// WebSocket server that pairs the first two connections and forwards
// every frame from one to the other (NextReader → NextWriter → ReadFrom,
// as hubsim's relay does), so both ends are dialled stream.Conns, masked
// and TLS-batched exactly as the operator and the agent are.
type benchRelay struct {
	srv   *httptest.Server
	conns chan *websocket.Conn
	wg    sync.WaitGroup
}

func newBenchRelay(b *testing.B) *benchRelay {
	r := &benchRelay{conns: make(chan *websocket.Conn, 2)}
	up := websocket.Upgrader{ReadBufferSize: 4 << 10, WriteBufferSize: stream.MaxFramePayload + 1}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ws, err := up.Upgrade(w, req, nil)
		if err == nil {
			r.conns <- ws
		}
	}))
	b.Cleanup(func() { r.srv.Close(); r.wg.Wait() })
	return r
}

// pair dials the relay twice and starts forwarding between the two.
func (r *benchRelay) pair(b *testing.B) (op, dev *stream.Conn) {
	pool := x509.NewCertPool()
	pool.AddCert(r.srv.Certificate())
	url := "wss" + strings.TrimPrefix(r.srv.URL, "https") + "/bridges/h/d/s/1"
	dial := func() *stream.Conn {
		c, err := stream.Dial(context.Background(), url, "tok", stream.DialOptions{TLSConfig: &tls.Config{RootCAs: pool}})
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	op = dial()
	a := <-r.conns
	dev = dial()
	d := <-r.conns
	forward := func(from, to *websocket.Conn) {
		defer r.wg.Done()
		defer to.Close()
		for {
			_, fr, err := from.NextReader()
			if err != nil {
				return
			}
			w, err := to.NextWriter(websocket.BinaryMessage)
			if err != nil {
				return
			}
			if _, err := w.(io.ReaderFrom).ReadFrom(fr); err != nil {
				return
			}
			if err := w.Close(); err != nil {
				return
			}
		}
	}
	r.wg.Add(2)
	go forward(a, d) // owned by r: cleanup waits on r.wg
	go forward(d, a)
	b.Cleanup(func() { op.Close(); dev.Close(); a.Close(); d.Close() })
	return op, dev
}

// oneConnHandler hands out one prepared target connection.
type oneConnHandler struct{ c chan net.Conn }

func (h oneConnHandler) Open(ctx context.Context, id uint32, req Request) (net.Conn, error) {
	select {
	case c := <-h.c:
		return c, nil
	default:
		return nil, &Refusal{Code: CodeFailure, Reason: "no target left"}
	}
}

func (h oneConnHandler) Closed(uint32, Request, Result) {}

// chain is one connection from an application socket (app) to a target
// socket (tgt) through a device stream, plain or multiplexed.
type chain struct {
	app, tgt net.Conn
}

// plainChain bridges app and tgt over one device stream, as porthole
// proxy without mux and the agent do (stream.Bridge at both ends).
func plainChain(b *testing.B) chain {
	op, dev := newBenchRelay(b).pair(b)
	app, appS := tcpPair(b)
	tgtA, tgt := tcpPair(b)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); stream.Bridge(context.Background(), appS, op) }()
	go func() { defer wg.Done(); stream.Bridge(context.Background(), dev, tgtA) }()
	b.Cleanup(func() { app.Close(); tgt.Close(); wg.Wait() })
	return chain{app: app, tgt: tgt}
}

// muxChain carries app ↔ tgt as one connection inside a multiplexed
// stream, as porthole proxy with mux and the agent's mux server do.
func muxChain(b *testing.B, cfg Config) chain {
	op, dev := newBenchRelay(b).pair(b)
	app, appS := tcpPair(b)
	tgtA, tgt := tcpPair(b)
	h := oneConnHandler{c: make(chan net.Conn, 1)}
	h.c <- tgtA
	srv, err := NewServer(dev, cfg, h)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); srv.Serve(ctx) }()
	cl, err := NewClient(ctx, op, cfg)
	if err != nil {
		b.Fatal(err)
	}
	mc, err := cl.Open(ctx, Request{Kind: KindTarget, Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); Join(ctx, appS, mc, nil, nil) }()
	b.Cleanup(func() { app.Close(); tgt.Close(); cancel(); cl.Close(); wg.Wait() })
	return chain{app: app, tgt: tgt}
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchChunk is what one op moves: 1 MiB.
const benchChunk = 1 << 20

// transfer writes n chunks into w and reads them from r.
func transfer(b *testing.B, w, r net.Conn, n int) {
	errc := make(chan error, 1)
	go func() { // waited for below
		buf := make([]byte, 256<<10)
		var err error
		for range n * (benchChunk / len(buf)) {
			if _, err = w.Write(buf); err != nil {
				break
			}
		}
		errc <- err
	}()
	buf := make([]byte, 256<<10)
	var got int64
	want := int64(n) * benchChunk
	for got < want {
		k, err := r.Read(buf[:min(int64(len(buf)), want-got)])
		got += int64(k)
		if err != nil {
			b.Fatalf("read after %d of %d bytes: %v", got, want, err)
		}
	}
	if err := <-errc; err != nil && !errors.Is(err, net.ErrClosed) {
		b.Fatal(err)
	}
}

// BenchmarkBulk moves bulk data through one connection inside a
// multiplexed stream and through a plain stream, both ways, over a
// loopback relay (TLS at every hop, as through the streaming endpoint).
// cpu-s/GB is the whole process's CPU time (both ends, the relay, the
// sockets at either end) per GB moved; compare mux with plain.
func BenchmarkBulk(b *testing.B) {
	for _, kind := range []string{"plain", "mux"} {
		for _, dir := range []string{"up", "down"} {
			b.Run(kind+"/"+dir, func(b *testing.B) {
				var c chain
				if kind == "plain" {
					c = plainChain(b)
				} else {
					c = muxChain(b, Config{})
				}
				w, r := c.app, c.tgt
				if dir == "down" {
					w, r = c.tgt, c.app
				}
				transfer(b, w, r, 4) // warm up
				b.SetBytes(benchChunk)
				cpu0 := cpuTime(b)
				b.ResetTimer()
				transfer(b, w, r, b.N)
				b.StopTimer()
				cpu := cpuTime(b) - cpu0
				b.ReportMetric(cpu.Seconds()/(float64(b.N)*benchChunk/1e9), "cpu-s/GB")
			})
		}
	}
}
