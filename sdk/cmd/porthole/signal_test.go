//go:build unix

package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/service/servicetest"
	"github.com/porthole-iot/porthole/sdk/stream"
)

// TestStdioSignalsCloseNormally: porthole stdio (the real main, in a child
// process) ends the stream with a normal close frame when it gets SIGHUP
// (ssh sends it to its ProxyCommand), SIGINT or SIGTERM: the device reads
// a clean end (EOF), not a dropped stream (1001).
func TestStdioSignalsCloseNormally(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			sim := hubsimtest.New(t)
			ended := make(chan error, 1)
			started := make(chan struct{}, 1)
			startDevice(t, sim, "dev1", func(c *servicetest.DeviceConfig) {
				c.Serve = func(ctx context.Context, name string, conn net.Conn) {
					conn.Write([]byte("ready\n"))
					started <- struct{}{}
					_, err := io.Copy(io.Discard, conn)
					ended <- err
				}
			})
			ctx, cancel := timeoutCtx(t)
			defer cancel()
			cmd := exec.CommandContext(ctx, self, append([]string{"stdio", "dev1"}, simFlags(sim)...)...)
			cmd.Env = append(os.Environ(), runMainEnv+"=1")
			stdin, err := cmd.StdinPipe() // kept open: only the signal ends it
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 6)
			if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "ready\n" {
				t.Fatalf("stdio output %q %v", buf, err)
			}
			<-started
			cmd.Process.Signal(sig)
			select {
			case err := <-ended:
				var ce *stream.CloseError
				if err != nil || errors.As(err, &ce) {
					t.Fatalf("device saw %v, want a normal close", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("stream still open after the signal")
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("porthole stdio exited with %v", err)
			}
		})
	}
}
