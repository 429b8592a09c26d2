package hubsimtest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/hubsim/hubsimtest/sdkconfig"
	"github.com/porthole-iot/porthole/sdk/dps"
	"github.com/porthole-iot/porthole/sdk/iothub"
	"github.com/porthole-iot/porthole/sdk/service"
)

// Example is the whole device path against a sim: enroll a device in DPS,
// provision it, connect it to its hub, and open a device stream to it from
// the service side. sdkconfig fills in every client's host names, keys,
// the sim's CA and its dial seam; WithFastDPS skips the poll interval.
func Example() {
	t := &exampleTB{} // in a test: its *testing.T
	defer t.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	sim := hubsimtest.New(t, hubsimtest.WithFastDPS(), hubsimtest.WithLogger(slog.New(slog.DiscardHandler)))

	// Enroll and provision.
	key := sim.EnrollSymmetricKey("dev1", nil)
	prov, err := dps.New(sdkconfig.Provisioning(sim, "dev1", key))
	if err != nil {
		t.Fatal(err)
	}
	res, err := prov.Register(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("provisioned:", res.Status, res.DeviceID)

	// Connect to the assigned hub and serve streams: echo one line.
	dev, err := iothub.Dial(ctx, sdkconfig.Device(sim, res.AssignedHub, res.DeviceID, key))
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	dev.OnStreamRequest(func(ctx context.Context, req *iothub.StreamRequest) {
		c, err := req.Accept(ctx)
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		_, _ = c.Write(buf[:n])
	})
	if err := dev.WaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}

	// Open a stream from the service side.
	svc, err := service.New(sdkconfig.Service(sim, res.AssignedHub))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	s, err := svc.OpenStream(ctx, res.DeviceID, "ssh")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := io.WriteString(s, "hello through the stream"); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, 64)
	n, err := s.Read(echo)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("echo: %s\n", echo[:n])
	// Output:
	// provisioned: assigned dev1
	// echo: hello through the stream
}
