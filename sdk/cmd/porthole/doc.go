// Command porthole reaches Linux devices behind NAT through Azure IoT Hub
// device streams, against Azure or hubsim alike.
//
//	porthole ssh [user@]<device> [--stream ssh] [-- ssh args…]
//	porthole stdio <device> [--stream ssh]
//	porthole proxy <device> -L [addr:]<port>[:target] [-L …] [--stream ssh] [--mux auto|on|off]
//	porthole socks <device> -D [addr:]<port>
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
// so on stderr, which ssh shows; SIGHUP (which ssh sends its ProxyCommand
// when it exits), SIGINT and SIGTERM end the stream with a normal close.
//
// proxy listens on every -L and carries all their connections inside one
// multiplexed stream (sdk/stream/mux), reopened with backoff when it drops;
// against a device without multiplexing it opens one stream per
// connection, paced at --stream-rate (4/s; IoT Hub allows 5 new streams per
// second per hub) and waiting out a 429's Retry-After, so connections are
// delayed, never dropped. socks is a SOCKS5 server (CONNECT, no
// authentication) whose destinations the device's allow-list decides; its
// refusals reach the client as SOCKS reply codes. proxy, socks and stdio
// ping their stream (--keepalive 20s, --keepalive-timeout 60s) and append
// one JSON audit line per stream and connection to --audit FILE.
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
