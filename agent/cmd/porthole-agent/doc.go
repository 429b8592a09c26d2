// Command porthole-agent runs on the device: it provisions through Azure
// DPS, keeps a connection to the assigned IoT hub and bridges device
// streams (by default "ssh") to local TCP services.
//
//	porthole-agent [-config FILE] <command> [flags]
//
// Commands: run (foreground; what the service manager starts), validate
// (check the config), doctor (field checks with fixes), status and reprovision (talk to the running agent
// over the unix socket agent.sock in its state directory), install,
// uninstall, start and stop (the system service, through
// github.com/kardianos/service), version.
//
// The config file is -config, else $PORTHOLE_CONFIG, else
// /etc/porthole/agent.yaml.
//
// Build tag porthole_minimal (opt-in, for firmware that ships its own init
// script): leaves out doctor and the service verbs, which then answer with
// a usage error; everything else is the same. SIZE.md has the sizes.
//
// Memory: unless GOGC or GOMEMLIMIT are set in the environment, main sets
// GOGC=50 and a soft GOMEMLIMIT of 64 MiB, suited to boards with 64–128 MiB
// of RAM.
package main
