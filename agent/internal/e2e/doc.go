// Package e2e holds porthole's end-to-end tests and the device-streams
// benchmark. It has no code of its own outside its tests and is never
// linked into a binary.
//
// The tests build the shipped binaries once per test process (hubsim,
// porthole-agent, porthole, plus the benchmark's plain TCP forwarder from
// testdata/tcpfwd) and run each as its own process on loopback: hubsim on
// free ports with a temporary state directory, a device enrolled through
// hubsim's DPS service API, porthole-agent with a config whose resolve
// entries and ca_file point it at hubsim, and a real OpenSSH sshd (and
// dropbear) with a throw-away host key as the device's SSH server. The
// operator side is the system ssh and scp through "porthole ssh" and
// "porthole stdio".
//
// TestSSHEmulatedMipsle does the same with the agent cross-built as shipped
// for MIPS routers (linux/mipsle, soft float) and run under qemu-user
// (qemu-mipsel-static named on the command line, so no binfmt_misc).
//
// TestBrowserPage drives headless Chromium (Debian's chromium, which `make
// tools` installs) through "porthole proxy" to a device-side page of 30
// parallel resources, over one multiplexed stream and over one stream per
// connection against an agent with mux disabled, on hubsim's default
// stream limits, and prints the load times (with PORTHOLE_BENCH=1 also to
// out/bench-browser.txt). TestProxyReopen kills the agent under a running
// "porthole proxy" and checks that the proxy reopens its stream.
//
// Every spawned process must exit cleanly at the end (SIGTERM, exit 0
// within a deadline); the test process itself runs under goleak.
//
// The benchmark (TestBenchStreams) runs only with PORTHOLE_BENCH=1. It
// compares hubsim's relay path (porthole proxy → hubsim → porthole-agent →
// target, three processes, TLS on) with a three-process plain TCP forwarder
// chain of the same shape, measures CPU per GB, stream setup latency and
// the agent's memory, prints a table and writes it to
// out/bench-streams.txt at the module root.
package e2e
