package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/service/servicetest"
	"github.com/porthole-iot/porthole/sdk/stream"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
)

// TestAttach: the loopback attachment refuses a client without the token,
// serves the stream to the one with it (through attachStdio, as ssh's
// ProxyCommand), and reports the device's going-away status on Close.
func TestAttach(t *testing.T) {
	sim := hubsimtest.New(t)
	goAway := make(chan struct{})
	startDevice(t, sim, "dev1", func(c *servicetest.DeviceConfig) {
		c.Serve = func(ctx context.Context, name string, conn net.Conn) {
			r := bufio.NewReader(conn)
			line, _ := r.ReadString('\n')
			_, _ = conn.Write([]byte("echo " + line))
			select {
			case <-goAway:
			case <-ctx.Done():
			}
			conn.(*stream.Conn).CloseWith(stream.CloseGoingAway, "agent shutting down")
		}
	})
	ctx, cancel := timeoutCtx(t)
	defer cancel()
	e := testEnv(t, nil)
	fs := newFlagSet("t", io.Discard)
	var cf connFlags
	cf.register(fs)
	if _, _, err := parse(fs, simFlags(sim)); err != nil {
		t.Fatal(err)
	}
	s, err := loadSettings(e, &cf, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	conn, _, err := s.openStream(ctx, e, "dev1", streamFlags{stream: "ssh"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newAttachment(ctx, conn, s.log)
	if err != nil {
		t.Fatal(err)
	}

	// Without the token: closed, and the listener still waits.
	bad, err := net.Dial("tcp", a.addr())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = bad.Write([]byte(strings.Repeat("0", len(a.token)) + "\n"))
	_ = bad.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := bad.Read(make([]byte, 1)); err == nil {
		t.Fatalf("a wrong token got %d bytes", n)
	}
	bad.Close()

	// attachStdio without the token in its environment refuses to start.
	var ue *usageError
	if err := attachStdio(ctx, e, a.addr(), strings.NewReader(""), io.Discard); !errors.As(err, &ue) {
		t.Fatalf("attach without token: %v", err)
	}
	if err := attachStdio(ctx, testEnv(t, map[string]string{envAttachToken: a.token}), "192.0.2.1:22", strings.NewReader(""), io.Discard); !errors.As(err, &ue) {
		t.Fatalf("attach to a non-loopback address: %v", err)
	}

	// With it: the stream's bytes both ways.
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inR.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	done := make(chan error, 1)
	go func() { // owned by the test: received below
		done <- attachStdio(ctx, testEnv(t, map[string]string{envAttachToken: a.token}), a.addr(), inR, outW)
		outW.Close()
	}()
	if _, err := inW.Write([]byte("hi\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil || line != "echo hi\n" {
		t.Fatalf("through the attachment: %q %v", line, err)
	}
	close(goAway) // the device's agent shuts down
	if err := <-done; err != nil {
		t.Fatalf("attachStdio: %v", err)
	}
	inW.Close()
	err = a.Close()
	var sc *streamClosedError
	if !errors.As(err, &sc) || !strings.HasPrefix(err.Error(), "stream closed by the far end: status 1001 (going away)") {
		t.Fatalf("Close: %v", err)
	}
}
