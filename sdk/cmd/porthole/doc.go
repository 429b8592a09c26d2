// Command porthole reaches Linux devices behind NAT through Azure IoT Hub
// device streams, against Azure or hubsim alike.
//
//	porthole ssh [user@]<device> [--stream ssh] [-- ssh args…]
//	porthole stdio <device> [--stream ssh]
//	porthole proxy <device> -L [addr:]<port> [--stream ssh]
//	porthole invoke <device> <method> [--payload JSON] [--timeout 30s]
//	porthole dps enroll <registrationId> [--symmetric-key K] [--group] [--hub host]…
//	porthole dps get|delete <id> [--group]
//	porthole dps derive-key --group-key-file <file|-> (--out-dir <dir> | --stdout) <registrationId>…
//
// ssh runs the system ssh with "-o ProxyCommand=<porthole> stdio <device>"
// and "-o HostKeyAlias=<device>", so known_hosts entries follow the device
// id (quoted for ssh's option parser: Azure allows ' # % and more in device
// ids). It also sets "-o ServerAliveInterval=15 -o ServerAliveCountMax=3",
// so a session whose path died ends within about 45 s; the user's own -o
// values for either replace them. stdio bridges one stream to standard
// input and output (what ProxyCommand needs); when the far end closes the
// stream with a status (1001 when the device's agent shuts down), it says
// so on stderr, which ssh shows. proxy listens locally and opens one
// stream per accepted connection until interrupted.
//
// # Connection settings
//
// Every command takes, in this order of precedence: flags
// (--connection-string, --dps-connection-string, --ca <file>, --resolve
// host:port=ip:port, repeatable like curl's --resolve, --config <file>);
// the environment (PORTHOLE_CONNECTION_STRING,
// PORTHOLE_DPS_CONNECTION_STRING, PORTHOLE_CONFIG); and the config file, by
// default $XDG_CONFIG_HOME/porthole/config.yaml
// (~/.config/porthole/config.yaml):
//
//	connection_string: HostName=…;SharedAccessKeyName=…;SharedAccessKey=…
//	dps_connection_string: HostName=…;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=…
//	ca_file: /path/to/hubsim-ca.pem
//	resolve: ["hub-eu.local:443=127.0.0.1:8443"]
//
// --ca adds a CA (hubsim's) to the system roots; --resolve sends
// connections for host:port to ip:port, for lab or hubsim host names that do
// not resolve.
//
// porthole never prints keys or tokens. "porthole ssh" passes a connection
// string given by flag to its ProxyCommand through the environment, not the
// command line. "dps derive-key" (per-device keys from an enrollment group
// key, for manufacturing) reads the group key from a file or stdin and
// writes each device key to a 0600 file; it prints keys only when --stdout
// asks for them. "dps enroll --key-file" writes the enrollment's key to a
// file with mode 0600 instead of printing it.
package main
