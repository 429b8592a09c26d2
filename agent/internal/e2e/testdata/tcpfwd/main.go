// Command tcpfwd is the streams benchmark's baseline: a plain TCP forwarder.
// It listens on -listen, prints "listening <addr>" on stdout once it does,
// and copies every accepted connection to a new connection to -to, both
// ways, through a user-space buffer of -buf bytes (like socat; -splice lets
// the Go runtime use splice(2) instead). A finished direction is passed on
// as a half-close. SIGTERM or SIGINT stops it.
//
// It lives in testdata so that "go test ./..." and "go build ./..." skip
// it; the benchmark builds it by its path.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	to := flag.String("to", "", "address to forward to")
	bufSize := flag.Int("buf", 64<<10, "copy buffer size")
	splice := flag.Bool("splice", false, "let the runtime splice (zero-copy) instead of copying through a buffer")
	flag.Parse()
	if *to == "" {
		log.Fatal("tcpfwd: -to is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	go func() { // owned by main: ends when ln is closed
		<-ctx.Done()
		ln.Close()
	}()
	var wg sync.WaitGroup
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		wg.Add(1)
		go func() { // owned by main through wg
			defer wg.Done()
			forward(ctx, c.(*net.TCPConn), *to, *bufSize, *splice)
		}()
	}
	wg.Wait()
}

func forward(ctx context.Context, a *net.TCPConn, to string, bufSize int, splice bool) {
	defer a.Close()
	var d net.Dialer
	bc, err := d.DialContext(ctx, "tcp", to)
	if err != nil {
		log.Print(err)
		return
	}
	b := bc.(*net.TCPConn)
	defer b.Close()
	stop := context.AfterFunc(ctx, func() { a.Close(); b.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pipe(b, a, bufSize, splice) }()
	go func() { defer wg.Done(); pipe(a, b, bufSize, splice) }()
	wg.Wait()
}

// pipe copies src to dst and then half-closes dst.
func pipe(dst, src *net.TCPConn, bufSize int, splice bool) {
	if splice {
		_, _ = io.Copy(dst, src)
	} else {
		// Hide ReadFrom/WriteTo so io.CopyBuffer really uses the buffer.
		_, _ = io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, bufSize))
	}
	_ = dst.CloseWrite()
	_ = src.CloseRead()
}
