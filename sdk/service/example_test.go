package service_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/service"
)

// ExampleClient_OpenStream opens an "ssh" stream to a device and copies it
// to stdout, retrying while the hub throttles.
func ExampleClient_OpenStream() {
	ctx := context.Background()
	c, err := service.New(service.Config{ConnectionString: os.Getenv("PORTHOLE_CONNECTION_STRING")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	var conn io.ReadWriteCloser
	err = retry.Do(ctx, retry.Policy{MaxAttempts: 5}, func(ctx context.Context) error {
		s, err := c.OpenStream(ctx, "dev1", "ssh", service.WithConnectTimeout(20*time.Second))
		if err != nil {
			return err
		}
		conn = s
		return nil
	})
	switch {
	case errors.Is(err, service.ErrDeviceNotOnline):
		fmt.Println("dev1 is offline")
		return
	case errors.Is(err, service.ErrStreamRejected):
		fmt.Println("dev1 does not allow ssh")
		return
	case err != nil:
		fmt.Println(err)
		return
	}
	defer conn.Close()
	_, _ = io.Copy(os.Stdout, conn)
}

// ExampleClient_InvokeMethod calls a direct method with a JSON payload.
func ExampleClient_InvokeMethod() {
	c, err := service.New(service.Config{ConnectionString: os.Getenv("PORTHOLE_CONNECTION_STRING")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	status, resp, err := c.InvokeMethod(context.Background(), "dev1", "reprovision", map[string]bool{"force": true}, 30*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(status, string(resp))
}
