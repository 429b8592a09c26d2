package config_test

import (
	"fmt"

	"github.com/porthole-iot/porthole/agent/internal/config"
)

// A technician's typo-ridden file: every problem is reported at once, each
// with its line, the field, what is wrong and what is expected.
func ExampleParse() {
	yaml := `provisioning:
  id_scop: 0ne00012345
  registration_id: gateway-0001
  attestation:
    symmetric_key: UkVQTEFDRS1NRS1XSVRILVRIRS1ERVZJQ0UtS0VZISE=
streams:
  targets:
    ssh: 127.0.0.1
`
	_, _, err := config.Parse("/etc/porthole/agent.yaml", []byte(yaml))
	fmt.Println(err)
	// Output:
	// /etc/porthole/agent.yaml:1: provisioning.id_scope: missing; expected the ID scope from the DPS overview page, like 0ne00012345
	// /etc/porthole/agent.yaml:2: provisioning.id_scop: unknown key; did you mean "id_scope"?
	// /etc/porthole/agent.yaml:8: streams.targets.ssh: "127.0.0.1" has no port; expected host:port, like 127.0.0.1:22
}

// On SIGHUP the daemon loads the new file and asks what it must do.
func ExampleChanges() {
	oldCfg, _, _ := config.Parse("agent.yaml", []byte(`provisioning:
  id_scope: 0ne00012345
  registration_id: gateway-0001
  attestation:
    symmetric_key: UkVQTEFDRS1NRS1XSVRILVRIRS1ERVZJQ0UtS0VZISE=
`))
	newCfg, _, _ := config.Parse("agent.yaml", []byte(`provisioning:
  id_scope: 0ne00012345
  registration_id: gateway-0001
  attestation:
    symmetric_key: UkVQTEFDRS1NRS1XSVRILVRIRS1ERVZJQ0UtS0VZISE=
streams:
  targets: {ssh: 127.0.0.1:22, web: 127.0.0.1:80}
log:
  level: debug
`))
	ch := config.Changes(oldCfg, newCfg)
	fmt.Println(ch)
	fmt.Println("apply in place:", ch.LiveOnly())
	// Output:
	// live: log.level, streams.targets
	// apply in place: true
}
