package iothub_test

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"net"
	"time"

	"github.com/porthole-iot/porthole/sdk/iothub"
	"github.com/porthole-iot/porthole/sdk/stream"
)

// A device agent: connect, answer a method, follow desired properties,
// report state and serve device streams until the hub refuses the device.
func Example() {
	ctx := context.Background()
	c, err := iothub.Dial(ctx, iothub.Config{
		HostName:        "myhub.azure-devices.net",
		DeviceID:        "gateway-17",
		SharedAccessKey: "…base64 device key…",
	})
	var refused *iothub.ConnectError
	if errors.As(err, &refused) {
		log.Fatalf("hub refused the device (%v): provision again", err)
	} else if err != nil {
		log.Fatal(err) // transport trouble: retry with sdk/retry
	}
	defer c.Close()

	c.OnMethod("ping", func(ctx context.Context, payload json.RawMessage) (int, any) {
		return 200, map[string]any{"pong": time.Now().Unix()}
	})
	c.OnDesired(func(patch map[string]any, version int) {
		log.Printf("desired v%d: %v", version, patch)
	})
	c.OnStreamRequest(func(ctx context.Context, req *iothub.StreamRequest) {
		if req.Name != "ssh" {
			_ = req.Reject(ctx)
			return
		}
		conn, err := req.Accept(ctx)
		if err != nil {
			log.Print(err)
			return
		}
		sshd, err := net.Dial("tcp", "127.0.0.1:22")
		if err != nil {
			conn.Close()
			return
		}
		_, _, _ = stream.Bridge(ctx, conn, sshd) // closes both

	})
	if err := c.WaitSubscribed(ctx); err != nil {
		log.Fatal(err)
	}
	if _, err := c.UpdateReported(ctx, map[string]any{"agent": "ready"}); err != nil {
		log.Print(err)
	}
	<-c.Done()
	log.Printf("client stopped: %v", c.Err())
}
