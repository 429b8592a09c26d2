package config

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// This file holds the stream keys added with multiplexing (issue 13):
// streams.mux, streams.socks, streams.keepalive and streams.audit.

// MuxStreamName is the stream name a multiplexing operator asks for (the
// SDK's mux.StreamName, written here independently so that the agent's
// config does not import the SDK's wire package). No target may take it.
const MuxStreamName = "porthole-mux-v1"

// Defaults of the multiplexing keys.
const (
	DefaultMuxMaxConnsPerStream = 128
	DefaultMuxMaxConns          = 256
	// DefaultMuxWindow is the receive window of each connection inside a
	// mux stream (the SDK's mux.DefaultWindow, written here independently).
	DefaultMuxWindow = 512 << 10
	// MinMuxWindow and MaxMuxWindow bound streams.mux.window (yamux
	// refuses less than 256 KiB).
	MinMuxWindow             = 256 << 10
	MaxMuxWindow             = 16 << 20
	DefaultKeepaliveInterval = 20 * time.Second
	DefaultKeepaliveTimeout  = 60 * time.Second
	DefaultAuditMaxSize      = 1 << 20
	DefaultAuditMaxFiles     = 3
	// MaxMuxConnsLimit caps the connection limits.
	MaxMuxConnsLimit = 4096
)

// Mux configures multiplexed streams (many connections in one stream).
type Mux struct {
	// Enabled accepts streams named MuxStreamName; off, they are rejected
	// like any unknown name and operators fall back to plain streams.
	Enabled bool
	// MaxConnsPerStream bounds the connections inside one stream.
	MaxConnsPerStream int
	// MaxConns bounds the connections inside all mux streams together.
	MaxConns int
	// Window is each connection's receive window in bytes: what the agent
	// buffers at most for a connection whose target does not read, so a
	// worst case of MaxConns × Window. Larger windows carry bulk
	// transfers faster over a slow path; small devices may want the
	// minimum, 256 KiB.
	Window int64
}

// Keepalive configures the WebSocket ping/pong on every stream.
type Keepalive struct {
	// Interval between pings; 0 turns keepalive off.
	Interval time.Duration
	// Timeout: a stream that received nothing (no data, pong or ping) for
	// this long is closed as dead.
	Timeout time.Duration
}

// Audit configures the stream audit trail.
type Audit struct {
	// File receives one JSON line per stream and per mux connection; ""
	// writes the records to the log only.
	File     string
	MaxSize  int64
	MaxFiles int
}

// SocksRule allows SOCKS destinations: a host name (exact, case-
// insensitive) or an address prefix, and a set of ports.
type SocksRule struct {
	Host   string       // a host name; empty when Prefix is set
	Prefix netip.Prefix // valid when the rule is an address or CIDR
	Ports  []PortRange  // never empty
	Raw    string       // as written
}

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// AllowsPort reports whether port is in one of the rule's ranges.
func (r SocksRule) AllowsPort(port uint16) bool {
	for _, p := range r.Ports {
		if port >= p.Lo && port <= p.Hi {
			return true
		}
	}
	return false
}

// Allows reports whether the rule admits the destination: host as the
// operator asked for it, addr (invalid if unknown) the address it resolved
// to, and port.
func (r SocksRule) Allows(host string, addr netip.Addr, port uint16) bool {
	if !r.AllowsPort(port) {
		return false
	}
	if r.Prefix.IsValid() {
		return addr.IsValid() && r.Prefix.Contains(addr.Unmap())
	}
	return strings.EqualFold(strings.TrimSuffix(host, "."), r.Host)
}

// ParseSocksRule parses "host:ports", "ip:ports", "cidr:ports" or
// "[ipv6]:ports"/"[ipv6/len]:ports"; ports are "80", "80,443",
// "8000-8100" or "*".
func ParseSocksRule(s string) (SocksRule, error) {
	s = strings.TrimSpace(s)
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return SocksRule{}, fmt.Errorf("%q has no :ports", s)
	}
	host, ports := s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	r := SocksRule{Raw: s}
	if p, err := netip.ParsePrefix(host); err == nil {
		r.Prefix = p.Masked()
	} else if a, err := netip.ParseAddr(host); err == nil {
		r.Prefix = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
	} else {
		// A fully qualified name's final dot is dropped; "." alone is no
		// name (it would leave a rule with neither host nor prefix).
		r.Host = strings.ToLower(strings.TrimSuffix(host, "."))
		if strings.ContainsAny(host, "/[]: ") || r.Host == "" {
			return SocksRule{}, fmt.Errorf("%q is not a host name, address or CIDR", host)
		}
	}
	for _, part := range strings.Split(ports, ",") {
		part = strings.TrimSpace(part)
		if part == "*" {
			r.Ports = append(r.Ports, PortRange{1, 65535})
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		l, err := parsePort(lo)
		if err != nil {
			return SocksRule{}, err
		}
		h := l
		if isRange {
			if h, err = parsePort(hi); err != nil {
				return SocksRule{}, err
			}
			if h < l {
				return SocksRule{}, fmt.Errorf("port range %q is backwards", part)
			}
		}
		r.Ports = append(r.Ports, PortRange{l, h})
	}
	return r, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port (1-65535 or *)", s)
	}
	return uint16(n), nil
}

// SocksAllows reports whether any rule admits host (as asked), addr (as
// resolved; may be invalid) and port.
func SocksAllows(rules []SocksRule, host string, addr netip.Addr, port uint16) bool {
	for _, r := range rules {
		if r.Allows(host, addr, port) {
			return true
		}
	}
	return false
}

func defaultStreamsMux(s *Streams) {
	s.Mux = Mux{Enabled: true, MaxConnsPerStream: DefaultMuxMaxConnsPerStream, MaxConns: DefaultMuxMaxConns, Window: DefaultMuxWindow}
	s.Keepalive = Keepalive{Interval: DefaultKeepaliveInterval, Timeout: DefaultKeepaliveTimeout}
	s.Audit = Audit{MaxSize: DefaultAuditMaxSize, MaxFiles: DefaultAuditMaxFiles}
}

func (d *decoder) streamsMux(field string, n *yaml.Node) {
	m := &d.cfg.Streams.Mux
	d.mapping(n, field, []string{"enabled", "max_conns_per_stream", "max_conns", "window"}, map[string]fieldFunc{
		"enabled":              d.setBool(&m.Enabled),
		"max_conns_per_stream": d.setInt(&m.MaxConnsPerStream, "128"),
		"max_conns":            d.setInt(&m.MaxConns, "256"),
		"window":               d.setSize(&m.Window, "512KiB"),
	})
}

func (d *decoder) streamsKeepalive(field string, n *yaml.Node) {
	k := &d.cfg.Streams.Keepalive
	d.mapping(n, field, []string{"interval", "timeout"}, map[string]fieldFunc{
		"interval": d.setDuration(&k.Interval, "20s"),
		"timeout":  d.setDuration(&k.Timeout, "60s"),
	})
}

func (d *decoder) streamsAudit(field string, n *yaml.Node) {
	a := &d.cfg.Streams.Audit
	d.mapping(n, field, []string{"file", "max_size", "max_files"}, map[string]fieldFunc{
		"file":      d.setStr(&a.File),
		"max_size":  d.setSize(&a.MaxSize, "1MiB"),
		"max_files": d.setInt(&a.MaxFiles, "3"),
	})
}

func (d *decoder) streamsSocks(field string, n *yaml.Node) {
	d.mapping(n, field, []string{"allow"}, map[string]fieldFunc{
		"allow": func(field string, n *yaml.Node) {
			if n.Kind != yaml.SequenceNode {
				d.fail(n, field, "got "+kindName(n), "expected a list of host:ports or cidr:ports entries, like 192.168.1.0/24:80,443")
				return
			}
			var rules []SocksRule
			for i, c := range n.Content {
				c = d.deref(c, field)
				if c == nil {
					continue
				}
				sub := field + "[" + strconv.Itoa(i) + "]"
				s, ok := d.str(sub, c)
				if !ok {
					continue
				}
				r, err := ParseSocksRule(s)
				if err != nil {
					d.fail(c, sub, err.Error(), "expected host:ports or cidr:ports, like 192.168.1.0/24:80,443 or printer.lan:631")
					continue
				}
				rules = append(rules, r)
			}
			d.cfg.Streams.SocksAllow = rules
		},
	})
}

// streamsMux checks the multiplexing keys.
func (k *checker) streamsMux() {
	s := &k.c.Streams
	if _, taken := s.Targets[MuxStreamName]; taken {
		k.add("streams.targets."+MuxStreamName, "is reserved for multiplexed streams", "choose another stream name")
	}
	if s.Mux.MaxConnsPerStream < 1 || s.Mux.MaxConnsPerStream > MaxMuxConnsLimit {
		k.add("streams.mux.max_conns_per_stream", fmt.Sprintf("%d is out of range", s.Mux.MaxConnsPerStream), fmt.Sprintf("expected 1 to %d", MaxMuxConnsLimit))
	}
	if s.Mux.MaxConns < 1 || s.Mux.MaxConns > MaxMuxConnsLimit {
		k.add("streams.mux.max_conns", fmt.Sprintf("%d is out of range", s.Mux.MaxConns), fmt.Sprintf("expected 1 to %d", MaxMuxConnsLimit))
	}
	if s.Mux.Window < MinMuxWindow || s.Mux.Window > MaxMuxWindow {
		k.add("streams.mux.window", fmt.Sprintf("%d bytes is out of range", s.Mux.Window), "expected 256KiB to 16MiB")
	}
	if s.Keepalive.Interval < 0 {
		k.add("streams.keepalive.interval", "is negative", "expected 0 (off) or a duration like 20s")
	}
	if s.Keepalive.Interval > 0 && s.Keepalive.Timeout <= s.Keepalive.Interval {
		k.add("streams.keepalive.timeout", fmt.Sprintf("%s is not longer than the interval %s", formatDuration(s.Keepalive.Timeout), formatDuration(s.Keepalive.Interval)),
			"expected a timeout of two or three intervals, like 60s")
	}
	if s.Audit.File != "" {
		if s.Audit.MaxSize < 1024 {
			k.add("streams.audit.max_size", fmt.Sprintf("%d bytes is too small", s.Audit.MaxSize), "expected a size like 1MiB")
		}
		if s.Audit.MaxFiles < 0 {
			k.add("streams.audit.max_files", "is negative", "expected a count like 3")
		}
	}
}

// SplitDest splits a SOCKS destination "host:port".
func SplitDest(dest string) (string, uint16, error) {
	h, p, err := net.SplitHostPort(dest)
	if err != nil {
		return "", 0, err
	}
	port, err := parsePort(p)
	if err != nil {
		return "", 0, err
	}
	return h, port, nil
}

// streamsMuxChanges classifies changes of the multiplexing keys: the
// policy applies live (and closes what it no longer allows); the audit
// file is opened at start.
func streamsMuxChanges(diff func(*[]string, string, bool), ch *Change, o, n *Streams) {
	diff(&ch.Live, "streams.mux", o.Mux == n.Mux)
	diff(&ch.Live, "streams.socks.allow", slices.EqualFunc(o.SocksAllow, n.SocksAllow, func(a, b SocksRule) bool { return a.Raw == b.Raw }))
	diff(&ch.Live, "streams.keepalive", o.Keepalive == n.Keepalive)
	diff(&ch.Restart, "streams.audit", o.Audit == n.Audit)
}
