package config

import (
	"bytes"
	"maps"
	"slices"
	"strings"
)

// Change says what differs between two configs and what a reload must do
// about it. Each list holds dotted field names (never values), sorted.
type Change struct {
	// Live fields apply in place: the stream policy, the log level, and
	// hub.retry_cached_hub_for / hub.reprovision_method (policy read when
	// next needed; methods arrive on a wildcard subscription).
	Live []string
	// Reconnect fields need the hub connection (and any streams) torn
	// down and rebuilt with the cached assignment: hub.transport,
	// hub.keepalive, proxy, ca_file, resolve.
	Reconnect []string
	// Reprovision fields change the device's identity or how it reaches
	// DPS: the agent must register with DPS again.
	Reprovision []string
	// Restart fields cannot change in a running process (state_dir and the
	// log sink); a reload that touches them should be refused with a
	// request to restart the agent.
	Restart []string
}

// None reports whether nothing changed.
func (c Change) None() bool {
	return len(c.Live)+len(c.Reconnect)+len(c.Reprovision)+len(c.Restart) == 0
}

// LiveOnly reports whether every change can be applied in place.
func (c Change) LiveOnly() bool {
	return len(c.Reconnect)+len(c.Reprovision)+len(c.Restart) == 0
}

// NeedsReconnect reports whether the hub connection must be rebuilt
// (true also when a re-registration is needed).
func (c Change) NeedsReconnect() bool { return len(c.Reconnect)+len(c.Reprovision) > 0 }

// NeedsReprovision reports whether the agent must register with DPS again.
func (c Change) NeedsReprovision() bool { return len(c.Reprovision) > 0 }

// NeedsRestart reports whether the change cannot be applied without a restart.
func (c Change) NeedsRestart() bool { return len(c.Restart) > 0 }

func (c Change) String() string {
	if c.None() {
		return "no changes"
	}
	var parts []string
	for _, g := range []struct {
		name   string
		fields []string
	}{{"live", c.Live}, {"reconnect", c.Reconnect}, {"reprovision", c.Reprovision}, {"restart", c.Restart}} {
		if len(g.fields) > 0 {
			parts = append(parts, g.name+": "+strings.Join(g.fields, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

// Changes compares an old and a new config (both loaded). Secrets are
// compared by value but reported only by field name.
func Changes(old, new *Config) Change {
	var ch Change
	diff := func(dst *[]string, field string, same bool) {
		if !same {
			*dst = append(*dst, field)
		}
	}
	op, np := &old.Provisioning, &new.Provisioning
	oa, na := &op.Attestation, &np.Attestation
	diff(&ch.Reprovision, "provisioning.global_endpoint", op.GlobalEndpoint == np.GlobalEndpoint)
	diff(&ch.Reprovision, "provisioning.id_scope", op.IDScope == np.IDScope)
	diff(&ch.Reprovision, "provisioning.registration_id", op.RegistrationID == np.RegistrationID)
	diff(&ch.Reprovision, "provisioning.transport", op.Transport == np.Transport)
	diff(&ch.Reprovision, "provisioning.payload", bytes.Equal(op.Payload, np.Payload))
	diff(&ch.Reprovision, "provisioning.attestation.type", oa.Type == na.Type)
	// The key sources may move (inline → file) without the key changing;
	// what matters is the effective credential.
	diff(&ch.Reprovision, "provisioning.attestation.symmetric_key", oa.DeviceKey == na.DeviceKey)
	diff(&ch.Reprovision, "provisioning.attestation.cert_file", sameCert(oa, na))

	oh, nh := &old.Hub, &new.Hub
	diff(&ch.Reconnect, "hub.transport", oh.Transport == nh.Transport)
	diff(&ch.Reconnect, "hub.keepalive", oh.Keepalive == nh.Keepalive)
	diff(&ch.Reconnect, "hub.token_ttl", oh.TokenTTL == nh.TokenTTL)
	diff(&ch.Reconnect, "proxy.url", proxyString(old) == proxyString(new))
	diff(&ch.Reconnect, "ca_file", old.CAFile == new.CAFile && sameRoots(old, new))
	diff(&ch.Reconnect, "resolve", slices.EqualFunc(old.Resolve, new.Resolve, func(a, b Resolve) bool {
		return strings.EqualFold(a.From, b.From) && a.To == b.To
	}))

	ost, nst := &old.Streams, &new.Streams
	diff(&ch.Live, "streams.targets", maps.Equal(ost.Targets, nst.Targets))
	diff(&ch.Live, "streams.max_concurrent", ost.MaxConcurrent == nst.MaxConcurrent)
	diff(&ch.Live, "streams.idle_timeout", ost.IdleTimeout == nst.IdleTimeout)
	diff(&ch.Live, "streams.handshake_timeout", ost.HandshakeTimeout == nst.HandshakeTimeout)
	streamsMuxChanges(diff, &ch, ost, nst)
	diff(&ch.Live, "log.level", old.Log.Level == new.Log.Level)
	diff(&ch.Live, "hub.retry_cached_hub_for", oh.RetryCachedHubFor == nh.RetryCachedHubFor)
	diff(&ch.Live, "hub.reprovision_method", oh.ReprovisionMethod == nh.ReprovisionMethod)
	diff(&ch.Live, "hub.lookup_first", oh.LookupFirst == nh.LookupFirst) // read at the next boot or reconnect

	diff(&ch.Restart, "state_dir", old.StateDir == new.StateDir)
	diff(&ch.Restart, "log.format", old.Log.Format == new.Log.Format)
	diff(&ch.Restart, "log.destination", old.Log.Destination == new.Log.Destination)
	diff(&ch.Restart, "log.file", old.Log.File == new.Log.File)
	diff(&ch.Restart, "log.max_size", old.Log.MaxSize == new.Log.MaxSize)
	diff(&ch.Restart, "log.max_files", old.Log.MaxFiles == new.Log.MaxFiles)

	healthMetricsChanges(&ch, old, new)
	for _, l := range [][]string{ch.Live, ch.Reconnect, ch.Reprovision, ch.Restart} {
		slices.Sort(l)
	}
	return ch
}

func sameCert(a, b *Attestation) bool {
	if a.CertFile != b.CertFile || a.KeyFile != b.KeyFile {
		return false
	}
	if (a.Certificate == nil) != (b.Certificate == nil) {
		return false
	}
	if a.Certificate == nil {
		return true
	}
	return slices.EqualFunc(a.Certificate.Certificate, b.Certificate.Certificate, bytes.Equal)
}

func sameRoots(a, b *Config) bool {
	if a.RootCAs == nil || b.RootCAs == nil {
		return a.RootCAs == b.RootCAs
	}
	return a.RootCAs.Equal(b.RootCAs)
}

// proxyString includes the password: a changed password is a change.
func proxyString(c *Config) string {
	if c.Proxy.URL == nil {
		return ""
	}
	return c.Proxy.URL.String()
}
