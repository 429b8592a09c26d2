package stream_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log"
	"net"
	"net/http"

	"github.com/porthole-iot/porthole/sdk/stream"
)

// A device accepts a stream request (URL and token from the hub) and bridges
// the stream to its local sshd.
func ExampleBridge() {
	var (
		streamURL = "wss://streams.example.net:443/bridges/hub/dev1/ssh/0123"
		token     = "token-from-the-stream-request"
		caPool    = x509.NewCertPool() // the hub's CA (or nil for system roots)
	)
	ctx := context.Background()
	conn, err := stream.Dial(ctx, streamURL, token, stream.DialOptions{
		TLSConfig: &tls.Config{RootCAs: caPool},
		Proxy:     http.ProxyFromEnvironment,
	})
	if err != nil {
		log.Print(err)
		return
	}
	sshd, err := net.Dial("tcp", "127.0.0.1:22")
	if err != nil {
		conn.Close()
		log.Print(err)
		return
	}
	up, down, err := stream.Bridge(ctx, conn, sshd) // closes both when done
	log.Printf("stream ended: %d bytes up, %d down, err=%v", up, down, err)
}
