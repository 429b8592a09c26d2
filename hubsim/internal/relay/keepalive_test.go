package relay

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/stream"
)

// TestApplicationCloseForwarded: a side that closes with an application
// status (4000-4999) and a reason has both reach the other side.
func TestApplicationCloseForwarded(t *testing.T) {
	e := newEnv(t, Config{})
	tk := e.create(t, StreamSpec{})
	dev := e.mustDial(t, tk.URL, tk.DeviceToken)
	svc := e.mustDial(t, tk.URL, tk.ServiceToken)
	dev.Write([]byte("x"))
	if _, err := io.ReadFull(svc, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	dev.CloseWith(4001, "target ssh removed by config reload")
	err := readErr(t, svc)
	var ce *stream.CloseError
	if !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "target ssh removed by config reload" {
		t.Fatalf("service side: %v", err)
	}
}

// TestPingsGoEndToEnd: the relay forwards a side's pings to the other side
// and the pongs back, so a keepalive measures the whole path: a peer that
// stops reading (its pongs stop) is noticed through the relay.
func TestPingsGoEndToEnd(t *testing.T) {
	e := newEnv(t, Config{})
	tk := e.create(t, StreamSpec{})
	dev := e.mustDial(t, tk.URL, tk.DeviceToken)
	svc := e.mustDial(t, tk.URL, tk.ServiceToken)
	// The device side reads (and so answers pings); keepalive on the
	// service side stays up.
	devDone := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, dev); devDone <- err }()
	if err := svc.StartKeepalive(stream.Keepalive{Interval: 100 * time.Millisecond, Timeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	svcDone := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, svc); svcDone <- err }()
	select {
	case err := <-svcDone:
		t.Fatalf("healthy stream closed: %v", err)
	case <-time.After(2 * time.Second):
	}
	// A second stream whose device never reads, so never answers a ping:
	// the service side must time out. Were the relay answering pings
	// itself, it would not.
	dev.Close()
	<-devDone
	<-svcDone

	tk2 := e.create(t, StreamSpec{})
	dev2 := e.mustDial(t, tk2.URL, tk2.DeviceToken) // never reads: never pongs
	defer dev2.Close()
	svc2 := e.mustDial(t, tk2.URL, tk2.ServiceToken)
	if err := svc2.StartKeepalive(stream.Keepalive{Interval: 100 * time.Millisecond, Timeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, svc2)
	if !errors.Is(err, stream.ErrKeepalive) {
		t.Fatalf("service side: %v, want a keepalive timeout (pings answered by the relay?)", err)
	}
	svc2.Close()
}
