package server_test

import (
	"log"
	"log/slog"
	"os"

	"github.com/porthole-iot/porthole/hubsim/internal/server"
	"github.com/porthole-iot/porthole/hubsim/internal/simconfig"
)

// Example shows how an assembly brings hubsim up: prepare (keys, CA,
// listeners), build the components knowing the ports, start, print.
func Example() {
	cfg := simconfig.Default()
	cfg.Ports = simconfig.Ports{} // free ports
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	p, err := server.Prepare(cfg, logger)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Server.Close()

	comps := server.Components{
		// Broker: the MQTT broker with hub and DPS personalities,
		// Hub, DPS, Relay, Admin: their HTTP handlers,
		// Close: stops them.
	}
	if err := p.Server.Start(comps); err != nil {
		log.Fatal(err)
	}
	_ = p.Status().WriteBanner(os.Stdout)
}
