// Command porthole reaches Linux devices behind NAT through Azure IoT Hub
// device streams, against Azure or hubsim alike, across a fleet of hubs.
//
//	porthole ssh [user@]<device> [--stream ssh] [--hub H] [-q] [--timeout 30s] [-- ssh args…]
//	porthole stdio <device> [--stream ssh]
//	porthole proxy <device> -L [addr:]<port>[:target] [-L …] [--stream ssh] [--mux auto|on|off]
//	porthole socks <device> -D [addr:]<port>
//	porthole invoke <device> <method> [--payload JSON] [--timeout 30s] [-o json]
//	porthole devices [--hub H] [--query Q] [-o table|json]
//	porthole status <device> [-o table|json]
//	porthole ssh-config [--write]
//	porthole dps enroll|get|delete|derive-key …
//	porthole completion bash|zsh|fish, porthole help <cmd>, porthole version
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
// The command tree is spf13/cobra's (cli.go): help with examples,
// completion of commands, flags, hub names and the device names of the
// lookup cache. Each command's body parses its own flags with the standard
// flag package; cobra learns them by running the body with a marker
// argument that parse answers before anything else happens (flagsOf).
//
// # Finding the device
//
// The config names several hubs (inline or connection_string_file) and the
// DPS service credential. A device's hub is, in order: --hub; the only hub
// (a connection string by flag or environment, or a config with one hub and
// no DPS); the lookup cache (<user cache dir>/porthole/<profile>/devices.json,
// 0600, cache_ttl, default 10 minutes); DPS's registration record
// (assignedHub); the first hub whose registry knows the device. An
// operation that gets DeviceNotFound from a cached hub looks the device up
// again, once (hubs.go).
//
// # ssh
//
// "porthole ssh" opens the stream itself before ssh starts, so a refusal
// or a timeout is porthole's to report, with the reason the device's agent
// wrote into its twin (reported property "porthole", lastRejection). It
// then runs the system ssh with "-o ProxyCommand=<porthole> stdio <device>
// --attach 127.0.0.1:<port>": a plain pipe to a loopback listener that
// hands the open stream to the first client presenting a one-time token,
// which travels in the environment only (attach.go). No credential reaches
// ssh. It also sets HostKeyAlias=<device> (quoted for ssh's option parser:
// Azure allows ' # % and more in device ids) and "-o ServerAliveInterval=15
// -o ServerAliveCountMax=3", so a session whose path died ends within
// about 45 s; the user's own -o values replace them.
//
// "porthole ssh-config" writes a "Host *.porthole" block whose ProxyCommand
// is "porthole stdio %h" (stdio strips the suffix), quoted for /bin/sh on
// Linux and macOS and for Windows' OpenSSH, which has no POSIX shell.
//
// # Connection settings
//
// Flags beat the environment (PORTHOLE_CONNECTION_STRING,
// PORTHOLE_DPS_CONNECTION_STRING, PORTHOLE_CONFIG, PORTHOLE_PROFILE), which
// beats the config file, by default $XDG_CONFIG_HOME/porthole/config.yaml
// (profiles: …/porthole/profiles/<name>.yaml):
//
//	hubs:
//	  hub-eu: {connection_string: "HostName=…;SharedAccessKeyName=…;SharedAccessKey=…"}
//	  hub-us: {connection_string_file: hub-us.cs}
//	dps: {connection_string_file: dps.cs}
//	ca_file: /path/to/hubsim-ca.pem
//	resolve: ["hub-eu.local:443=127.0.0.1:8443"]
//	ssh: {host_suffix: .porthole, user: root}
//	cache_ttl: 10m
//
// The single connection_string and dps_connection_string of earlier
// versions still work. Unknown keys and values of the wrong kind are
// reported all at once as file:line: field: problem, with a did-you-mean
// (configkeys.go). --ca adds a CA (hubsim's) to the system roots; --resolve
// (adding to the config's list) sends connections for host:port to
// ip:port. Errors name the next step: --ca for an untrusted certificate,
// the kind of connection string needed, the resolve entry in use.
//
// porthole never prints keys or tokens. "dps derive-key" reads the group
// key from a file or stdin and writes each device key to a 0600 file; it
// prints keys only when --stdout asks for them. "dps enroll --key-file"
// writes the enrollment's key to a file with mode 0600 instead of printing
// it.
package main
