package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestStreamsMuxKeys(t *testing.T) {
	c, _ := mustParse(t, testFile, valid+`streams:
  mux:
    enabled: false
    max_conns_per_stream: 8
    max_conns: 16
    window: 1MiB
  socks:
    allow:
      - 127.0.0.1:80
      - 192.168.1.0/24:80,443
      - Printer.LAN:631
      - "[::1]:8000-8100"
  keepalive:
    interval: 5s
    timeout: 15s
  audit:
    file: /var/log/porthole/audit.log
    max_size: 64KiB
    max_files: 2
`)
	s := c.Streams
	if s.Mux != (Mux{Enabled: false, MaxConnsPerStream: 8, MaxConns: 16, Window: 1 << 20}) {
		t.Errorf("mux %+v", s.Mux)
	}
	if s.Keepalive != (Keepalive{Interval: 5 * time.Second, Timeout: 15 * time.Second}) {
		t.Errorf("keepalive %+v", s.Keepalive)
	}
	if s.Audit != (Audit{File: "/var/log/porthole/audit.log", MaxSize: 64 << 10, MaxFiles: 2}) {
		t.Errorf("audit %+v", s.Audit)
	}
	if len(s.SocksAllow) != 4 {
		t.Fatalf("allow %+v", s.SocksAllow)
	}
	d := Default().Streams
	if !d.Mux.Enabled || d.Mux.MaxConnsPerStream != DefaultMuxMaxConnsPerStream || d.Mux.Window != DefaultMuxWindow || d.Keepalive.Timeout != 60*time.Second || len(d.SocksAllow) != 0 {
		t.Errorf("defaults %+v", d)
	}
}

func TestSocksAllows(t *testing.T) {
	var rules []SocksRule
	for _, s := range []string{"127.0.0.1:80", "192.168.1.0/24:80,443", "Printer.LAN:631", "[::1]:8000-8100", "10.1.2.3:*"} {
		r, err := ParseSocksRule(s)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, r)
	}
	a := netip.MustParseAddr
	tests := []struct {
		host string
		addr netip.Addr
		port uint16
		want bool
	}{
		{"127.0.0.1", a("127.0.0.1"), 80, true},
		{"127.0.0.1", a("127.0.0.1"), 81, false},
		{"localhost", a("127.0.0.1"), 80, true}, // resolved address counts
		{"192.168.1.77", a("192.168.1.77"), 443, true},
		{"192.168.2.77", a("192.168.2.77"), 443, false},
		{"printer.lan", a("192.168.9.9"), 631, true},
		{"printer.lan.", netip.Addr{}, 631, true},
		{"printer.lan", netip.Addr{}, 80, false},
		{"evil.lan", a("192.168.9.9"), 631, false},
		{"::1", a("::1"), 8050, true},
		{"::1", a("::1"), 8101, false},
		{"::ffff:127.0.0.1", a("::ffff:127.0.0.1"), 80, true},
		{"10.1.2.3", a("10.1.2.3"), 65535, true},
		{"nothing", netip.Addr{}, 80, false},
	}
	for _, tc := range tests {
		if got := SocksAllows(rules, tc.host, tc.addr, tc.port); got != tc.want {
			t.Errorf("%s (%v) port %d: %v, want %v", tc.host, tc.addr, tc.port, got, tc.want)
		}
	}
	if SocksAllows(nil, "127.0.0.1", a("127.0.0.1"), 80) {
		t.Error("an empty allow-list allows")
	}
}

func TestStreamsMuxErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"reserved target", "streams:\n  targets:\n    porthole-mux-v1: 127.0.0.1:22\n", "streams.targets.porthole-mux-v1: is reserved"},
		{"bad rule", "streams:\n  socks:\n    allow:\n      - 10.0.0.0/8\n", `streams.socks.allow[0]: "10.0.0.0/8" has no :ports`},
		{"bad port", "streams:\n  socks:\n    allow:\n      - host:99999\n", `"99999" is not a port`},
		{"timeout below interval", "streams:\n  keepalive:\n    interval: 30s\n    timeout: 10s\n", "streams.keepalive.timeout: 10s is not longer than the interval"},
		{"max conns", "streams:\n  mux:\n    max_conns: 0\n", "streams.mux.max_conns: 0 is out of range"},
		// Found by the fuzz campaign (seed kept): "." is no host at all.
		{"dot for a host", "streams:\n  socks:\n    allow:\n      - .:1\n", `streams.socks.allow[0]: "." is not a host name, address or CIDR`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse(testFile, []byte(valid+tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzParseSocksRule(f *testing.F) {
	for _, s := range []string{"127.0.0.1:80", "10.0.0.0/8:1-1024", "[::1]:*", "host:80,443"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseSocksRule(s)
		if err != nil {
			return
		}
		if len(r.Ports) == 0 || (r.Host == "") == !r.Prefix.IsValid() {
			t.Fatalf("%q parsed to %+v", s, r)
		}
	})
}
