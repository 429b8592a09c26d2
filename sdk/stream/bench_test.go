package stream

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
)

// drain reads r into a reused buffer until it fails and reports the count.
func drain(r io.Reader, done chan<- int64) {
	buf := make([]byte, MaxFramePayload)
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if err != nil {
			done <- n
			return
		}
	}
}

// tlsPair returns both ends of a loopback TLS connection.
func tlsPair(b *testing.B) (client, server net.Conn) {
	s := newWSServer(b, nil) // only for its certificate
	cert := s.srv.TLS.Certificates[0]
	a, c := tcpPair(b)
	srv := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
	conf := s.tlsConfig()
	conf.ServerName = "example.com"
	cli := tls.Client(a, conf)
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		b.Fatal(err)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return cli, srv
}

// BenchmarkThroughput sends 64 KiB per op over loopback: plain TCP and TLS
// as baselines, then a stream Conn in both directions (a client masks its
// frames, a server does not) and through ReadFrom. allocs/op counts both the
// writer and the reader.
func BenchmarkThroughput(b *testing.B) {
	payload := make([]byte, MaxFramePayload)
	run := func(b *testing.B, w io.Writer, r io.Reader, closeW func()) {
		done := make(chan int64, 1)
		go drain(r, done)
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := w.Write(payload); err != nil {
				b.Fatal(err)
			}
		}
		closeW()
		if n := <-done; n != int64(b.N)*int64(len(payload)) {
			b.Fatalf("drained %d bytes, want %d", n, int64(b.N)*int64(len(payload)))
		}
	}
	b.Run("tcp", func(b *testing.B) {
		a, c := tcpPair(b)
		run(b, a, c, func() { a.Close() })
	})
	b.Run("tls", func(b *testing.B) {
		a, c := tlsPair(b)
		run(b, a, c, func() { a.Close() })
	})
	b.Run("ws-client-write", func(b *testing.B) {
		cli, srv := newWSServer(b, nil).pair(b)
		run(b, cli, srv, func() { cli.Close() })
	})
	b.Run("ws-server-write", func(b *testing.B) {
		cli, srv := newWSServer(b, nil).pair(b)
		run(b, srv, cli, func() { srv.Close() })
	})
	b.Run("ws-client-readfrom", func(b *testing.B) {
		cli, srv := newWSServer(b, nil).pair(b)
		pr, pw := net.Pipe()
		rf := make(chan error, 1)
		go func() { _, err := cli.ReadFrom(pr); rf <- err }()
		run(b, pw, srv, func() { pw.Close(); <-rf; cli.Close() })
	})
}
