package bridge_test

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/porthole-iot/porthole/agent/internal/bridge"
)

// pipeRequest stands for a hub stream request: Accept hands the bridge one
// end of a pipe; the other end plays the operator.
type pipeRequest struct {
	name     string
	operator net.Conn
	device   net.Conn
}

func (r *pipeRequest) Name() string                             { return r.name }
func (r *pipeRequest) Accept(context.Context) (net.Conn, error) { return r.device, nil }
func (r *pipeRequest) Reject(context.Context) error             { fmt.Println("rejected", r.name); return nil }

func Example() {
	// A local service to bridge to: it greets and hangs up.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write([]byte("SSH-2.0-example\r\n"))
		c.Close()
	}()

	b := bridge.New(bridge.Config{
		Policy: bridge.Policy{Targets: map[string]string{"ssh": ln.Addr().String()}},
		Device: "gw-7",
	})
	defer b.Close()

	b.Handle(context.Background(), &pipeRequest{name: "telnet"}) // not in the policy

	op, dev := net.Pipe()
	b.Handle(context.Background(), &pipeRequest{name: "ssh", operator: op, device: dev})
	banner, _ := io.ReadAll(op)
	fmt.Printf("%q\n", banner)
	// Output:
	// rejected telnet
	// "SSH-2.0-example\r\n"
}
