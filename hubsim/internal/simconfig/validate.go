package simconfig

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
)

// minKeyBytes is the shortest shared access key accepted from a file.
const minKeyBytes = 16

// Validate reports every problem at once (errors.Join), each prefixed with
// file:line: field when the config came from a file.
func (c *Config) Validate() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", c.pos(path), fmt.Sprintf(format, args...)))
	}

	wildcard := false
	listen := map[string]bool{}
	if len(c.Listen) == 0 {
		bad("listen", "at least one address is needed")
	}
	for i, l := range c.Listen {
		ip := net.ParseIP(strings.Trim(l, "[]"))
		if ip == nil {
			bad(fmt.Sprintf("listen[%d]", i), "%q is not an IP address", l)
			continue
		}
		if ip.IsUnspecified() {
			wildcard = true
		}
		if listen[ip.String()] {
			bad(fmt.Sprintf("listen[%d]", i), "%q listed twice", l)
		}
		listen[ip.String()] = true
	}
	checkPort := func(path string, p int) {
		if p < 0 || p > 65535 {
			bad(path, "port %d out of range (0 picks a free port)", p)
		}
	}
	checkPort("ports.https", c.Ports.HTTPS)
	checkPort("ports.mqtt", c.Ports.MQTT)
	if c.Ports.HTTPS != 0 && c.Ports.HTTPS == c.Ports.MQTT {
		bad("ports.mqtt", "same port as https (%d)", c.Ports.MQTT)
	}
	if c.StateDir == "" {
		bad("state_dir", "must not be empty")
	}
	switch c.Storage.Mode {
	case StorageSQLite, StorageMemory:
	default:
		bad("storage.mode", "must be %q or %q, not %q", StorageSQLite, StorageMemory, c.Storage.Mode)
	}

	// Host names: valid for a certificate and unique across hubs and DPS.
	seen := map[string]string{} // lower-case name → field path
	checkHost := func(path, name string, required bool) {
		if name == "" {
			if required {
				bad(path, "must not be empty")
			}
			return
		}
		if err := validName(name); err != nil {
			bad(path, "%v", err)
			return
		}
		key := strings.ToLower(strings.TrimSuffix(name, "."))
		if other, dup := seen[key]; dup {
			bad(path, "host name %q already used by %s", name, other)
			return
		}
		seen[key] = path
		if ip := net.ParseIP(name); ip != nil && !wildcard && !listen[ip.String()] {
			bad(path, "IP host name %q is not one of the listen addresses", name)
		}
	}

	if c.DPS.IDScope == "" {
		bad("dps.id_scope", "must not be empty")
	} else if !isAlnum(c.DPS.IDScope) {
		bad("dps.id_scope", "%q: only letters and digits", c.DPS.IDScope)
	} else if slices.ContainsFunc(servedSegments, func(s string) bool { return strings.EqualFold(s, c.DPS.IDScope) }) {
		bad("dps.id_scope", "%q is the first path segment of another hubsim API", c.DPS.IDScope)
	}
	checkHost("dps.global_endpoint", c.DPS.GlobalEndpoint, true)
	if !strings.EqualFold(c.DPS.HostName, c.DPS.GlobalEndpoint) {
		checkHost("dps.hostname", c.DPS.HostName, true)
	}
	c.checkPolicies("dps.policies", c.DPS.Policies, dpsRights, PolicyDPSOwner, bad)

	if len(c.Hubs) == 0 {
		bad("hubs", "at least one hub is needed")
	}
	names := map[string]bool{}
	for i, h := range c.Hubs {
		p := fmt.Sprintf("hubs[%d]", i)
		checkHost(p+".hostname", h.HostName, true)
		if h.Name == "" {
			bad(p+".name", "must not be empty")
		} else if names[h.Name] {
			bad(p+".name", "hub name %q used twice", h.Name)
		}
		names[h.Name] = true
		c.checkPolicies(p+".policies", h.Policies, hubRights, PolicyIoTHubOwner, bad)
	}
	if c.Streams.HostName != "" {
		if err := validName(c.Streams.HostName); err != nil {
			bad("streams.hostname", "%v", err)
		}
	}
	for i, n := range c.ExtraNames {
		if err := validName(n); err != nil {
			bad(fmt.Sprintf("extra_names[%d]", i), "%v", err)
		}
	}

	if _, err := parseLevel(c.Log.Level); err != nil {
		bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	if !slices.Contains([]string{"", "text", "json"}, c.Log.Format) {
		bad("log.format", "%q: want text or json", c.Log.Format)
	}
	if c.Streams.HandshakeTimeout <= 0 {
		bad("streams.handshake_timeout", "must be positive (e.g. 60s)")
	}
	if c.Streams.NewPerSecond < 0 {
		bad("streams.new_per_second", "must not be negative")
	}
	if c.Streams.ConcurrentPerHub < 0 {
		bad("streams.concurrent_per_hub", "must not be negative")
	}
	for _, l := range []struct {
		field string
		v     int64
	}{
		{"limits.max_connections", int64(c.Limits.MaxConnections)},
		{"limits.max_connections_per_address", int64(c.Limits.MaxConnectionsPerAddress)},
		{"limits.read_header_timeout", int64(c.Limits.ReadHeaderTimeout)},
		{"limits.body_timeout", int64(c.Limits.BodyTimeout)},
		{"limits.idle_timeout", int64(c.Limits.IdleTimeout)},
		{"limits.max_body_bytes", c.Limits.MaxBodyBytes},
	} {
		if l.v <= 0 {
			bad(l.field, "must be positive")
		}
	}
	if c.Limits.DeviceConnectionsPerSecond < 0 {
		bad("limits.device_connections_per_second", "must not be negative (0 = unlimited)")
	}
	return errors.Join(errs...)
}

func (c *Config) checkPolicies(path string, ps []Policy, allowed []string, owner string, bad func(string, string, ...any)) {
	seen := map[string]bool{}
	for i, p := range ps {
		pp := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case p.Name == "":
			bad(pp+".name", "must not be empty")
		case !isPolicyName(p.Name):
			bad(pp+".name", "%q: only letters, digits, '-', '_' and '.'", p.Name)
		case seen[p.Name]:
			bad(pp+".name", "policy %q defined twice", p.Name)
		}
		seen[p.Name] = true
		if len(p.Rights) == 0 {
			bad(pp+".rights", "at least one right is needed (one of %s)", strings.Join(allowed, ", "))
		}
		for j, r := range p.Rights {
			if !slices.Contains(allowed, r) {
				bad(fmt.Sprintf("%s.rights[%d]", pp, j), "unknown right %q (want one of %s)", r, strings.Join(allowed, ", "))
			}
		}
		for _, k := range []struct{ field, v string }{{"primary_key", p.PrimaryKey}, {"secondary_key", p.SecondaryKey}} {
			if k.v == "" {
				continue
			}
			// Never echo the key itself.
			raw, err := base64.StdEncoding.DecodeString(k.v)
			if err != nil {
				bad(pp+"."+k.field, "not valid base64")
			} else if len(raw) < minKeyBytes {
				bad(pp+"."+k.field, "too short: %d bytes, want at least %d", len(raw), minKeyBytes)
			}
		}
	}
	if !seen[owner] {
		bad(path, "policy %q is required (the banner and status file print its connection string)", owner)
	}
}

func isAlnum(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func isPolicyName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// servedSegments are the first path segments of hubsim's HTTPS APIs other
// than DPS's device API (hub REST, DPS service REST, relay, admin, health).
// The DPS device routes begin with the ID scope (/{idScope}/registrations/…),
// so a scope spelled like one of them would collide with that API's routes.
var servedSegments = []string{"devices", "twins", "messages", "statistics", "configurations", "jobs",
	"enrollments", "enrollmentGroups", "registrations", "bridges", "hubsim", "healthz", "metrics"}
