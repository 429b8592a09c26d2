package hubsimtest

import (
	"github.com/porthole-iot/porthole/hubsim/internal/pki"
	"github.com/porthole-iot/porthole/hubsim/internal/server"
	"github.com/porthole-iot/porthole/hubsim/internal/simconfig"
)

// Aliases for the types hubsimtest's API uses, so tests outside hubsim/
// (which cannot import hubsim/internal/...) can name them.
type (
	// Config is hubsim's configuration (see WithConfig).
	Config = simconfig.Config
	// Hub configures one simulated IoT hub.
	Hub = simconfig.Hub
	// Policy is a shared access policy.
	Policy = simconfig.Policy
	// Status is what the hubsim binary prints and writes as its status file.
	Status = server.Status
	// Prepared is a sim before its components start (see Assembler).
	Prepared = server.Prepared
	// Components are what an Assembler returns.
	Components = server.Components
	// PKI is the sim's certificate authority.
	PKI = pki.PKI
)
