package servicetest_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/service"
	"github.com/porthole-iot/porthole/sdk/service/servicetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDeviceServesAndCloses(t *testing.T) {
	sim := hubsimtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := sim.CreateDevice("hub-eu.local", "dev1")

	served := make(chan string, 1)
	dev, err := servicetest.StartDevice(ctx, servicetest.DeviceConfig{
		HubHost: "hub-eu.local", DeviceID: "dev1", Key: key,
		TLSConfig: sim.TLSConfig(), DialContext: sim.DialContext,
		Serve: func(ctx context.Context, name string, c net.Conn) {
			served <- name
			_, _ = c.Write([]byte("hi"))
			<-ctx.Done() // held open until Close
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := service.New(service.Config{ConnectionString: sim.HubConnectionString("hub-eu.local"), RootCAs: sim.CAPool, DialContext: sim.DialContext})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn, err := c.OpenStream(ctx, "dev1", "ssh")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b := make([]byte, 2)
	if _, err := io.ReadFull(conn, b); err != nil || string(b) != "hi" || <-served != "ssh" {
		t.Fatalf("read %q %v", b, err)
	}
	if dev.Accepted() != 1 {
		t.Errorf("accepted %d", dev.Accepted())
	}
	// Close ends the held stream and waits for Serve.
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	// The streaming endpoint ends the service side when the device side
	// goes: ReadAll returns instead of blocking.
	_, _ = io.ReadAll(conn)
}

func TestDeviceBadKey(t *testing.T) {
	sim := hubsimtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sim.CreateDevice("hub-eu.local", "dev1")
	_, err := servicetest.StartDevice(ctx, servicetest.DeviceConfig{
		HubHost: "hub-eu.local", DeviceID: "dev1", Key: hubsimtest.NewKey(t),
		TLSConfig: sim.TLSConfig(), DialContext: sim.DialContext,
	})
	if err == nil {
		t.Fatal("connected with the wrong key")
	}
}
