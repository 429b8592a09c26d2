package relay_test

import (
	"fmt"
	"io"
	"net/http/httptest"

	"github.com/porthole-iot/porthole/hubsim/internal/relay"
)

// A streaming endpoint behind a TLS server: the hub creates a stream and
// hands URL and tokens to the two sides, which connect with
// "Authorization: Bearer <token>".
func ExampleRelay() {
	var srv *httptest.Server
	r := relay.New(relay.Config{
		BaseURL:       func(hub string) string { return "wss://" + srv.Listener.Addr().String() },
		MaxConcurrent: 50,
		EventLog:      io.Discard, // e.g. a file: one JSON line per stream event
	})
	srv = httptest.NewTLSServer(r)
	defer srv.Close()
	defer r.Close() // ends the streams before the server goes

	tk, err := r.Create(relay.StreamSpec{Hub: "hub1.azure-devices.net", DeviceID: "dev1", Name: "ssh"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(tk.DeviceToken), len(tk.ServiceToken), tk.URL != "")
	// Output: 43 43 true
}
