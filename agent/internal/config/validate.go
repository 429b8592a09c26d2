package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Validate checks every value and returns all problems at once
// (errors.Join of *FieldError, sorted by line), or nil. It reads no files;
// LoadSecrets does that.
func (c *Config) Validate() error { return joinSorted(c.validate()) }

type checker struct {
	c    *Config
	errs []*FieldError
}

func (k *checker) add(field, problem, hint string) {
	k.errs = append(k.errs, &FieldError{File: k.c.File, Line: k.c.lineOf(field), Field: field, Problem: problem, Hint: hint})
}

// addAt reports field at the line of another field (for a missing key
// whose need comes from a sibling).
func (k *checker) addAt(lineField, field, problem, hint string) {
	k.errs = append(k.errs, &FieldError{File: k.c.File, Line: k.c.lineOf(lineField), Field: field, Problem: problem, Hint: hint})
}

// lineOf finds the line of field, or of its closest parent present in the file.
func (c *Config) lineOf(field string) int {
	for f := field; f != ""; {
		if l, ok := c.lines[f]; ok {
			return l
		}
		i := strings.LastIndexByte(f, '.')
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return 0
}

// Registration IDs: letters, digits and - . _ : ; at most 128; the last
// character a letter, digit or -.
// Source: MicrosoftDocs/azure-docs articles/iot-dps/concepts-service.md ("Registration ID").
//
// These checks are written out rather than as regular expressions: the
// patterns are one character class each, and compiling them at start-up
// cost the agent heap and binary size (cmd/porthole-agent/SIZE.md).
var (
	maxRegIDLen  = 128
	regIDHint    = "expected letters, digits and - . _ : (at most 128, ending in a letter, digit or -)"
	hostPortHint = "expected host:port, like 127.0.0.1:22"
)

// allBytes reports whether s is non-empty and every byte passes ok.
func allBytes(s string, ok func(byte) bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// isAlnum: A-Z, a-z, 0-9.
func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// isNameByte: letters, digits and . _ - (stream, method and host names).
func isNameByte(c byte) bool { return isAlnum(c) || c == '.' || c == '_' || c == '-' }

// isRegIDByte: a name byte or ':'.
func isRegIDByte(c byte) bool { return isNameByte(c) || c == ':' }

// validName reports whether s is a non-empty run of letters, digits, '.',
// '_' and '-'.
func validName(s string) bool { return allBytes(s, isNameByte) }

func (c *Config) validate() []*FieldError {
	k := &checker{c: c}
	k.provisioning()
	k.hub()
	k.proxy()
	k.streams()
	k.streamsMux()
	k.top()
	k.log()
	k.healthMetrics()
	return k.errs
}

func (k *checker) provisioning() {
	p := &k.c.Provisioning
	if p.GlobalEndpoint == "" {
		k.add("provisioning.global_endpoint", "is empty", "expected a host name like "+DefaultGlobalEndpoint)
	} else if prob := checkEndpoint(p.GlobalEndpoint); prob != "" {
		k.add("provisioning.global_endpoint", prob, "expected a host name like "+DefaultGlobalEndpoint+", optionally with :port")
	}
	switch {
	case p.IDScope == "":
		k.add("provisioning.id_scope", "missing", "expected the ID scope from the DPS overview page, like 0ne00012345")
	case !allBytes(p.IDScope, isAlnum):
		k.add("provisioning.id_scope", fmt.Sprintf("%q has characters other than letters and digits", clip(p.IDScope)),
			"expected the ID scope from the DPS overview page, like 0ne00012345")
	}
	switch id := p.RegistrationID; {
	case id == "":
		if p.Attestation.Type != AttestX509 {
			k.add("provisioning.registration_id", "missing", "expected this device's registration ID, like sn-0042 (for group keys, any unique name)")
		}
	case len(id) > maxRegIDLen:
		k.add("provisioning.registration_id", fmt.Sprintf("is %d characters long", len(id)), regIDHint)
	case !allBytes(id, isRegIDByte):
		k.add("provisioning.registration_id", fmt.Sprintf("%q has a character DPS does not allow", clip(id)), regIDHint)
	case !isAlnum(id[len(id)-1]) && id[len(id)-1] != '-':
		k.add("provisioning.registration_id", fmt.Sprintf("%q ends with %q", clip(id), id[len(id)-1:]), regIDHint)
	}
	switch p.Transport {
	case TransportHTTPS, TransportMQTT, TransportMQTTWS:
	default:
		k.add("provisioning.transport", fmt.Sprintf("%q is not supported", clip(string(p.Transport))), "expected one of https, mqtt, mqtt-ws")
	}
	k.attestation()
}

func (k *checker) attestation() {
	a := &k.c.Provisioning.Attestation
	const pre = "provisioning.attestation."
	symFields := []struct {
		name string
		set  bool
	}{
		{"symmetric_key", !a.SymmetricKey.IsZero()},
		{"symmetric_key_file", a.SymmetricKeyFile != ""},
		{"group_key", !a.GroupKey.IsZero()},
		{"group_key_file", a.GroupKeyFile != ""},
	}
	switch a.Type {
	case AttestSymmetricKey:
		var first string
		for _, f := range symFields {
			if !f.set {
				continue
			}
			if first == "" {
				first = f.name
				continue
			}
			k.add(pre+f.name, "set together with "+first, "expected exactly one of symmetric_key, symmetric_key_file, group_key, group_key_file")
		}
		if first == "" {
			k.add("provisioning.attestation", "no key configured",
				"expected one of symmetric_key, symmetric_key_file, group_key, group_key_file")
		}
		if a.CertFile != "" {
			k.add(pre+"cert_file", "is only used with type: x509", "expected it removed, or type: x509")
		}
		if a.KeyFile != "" {
			k.add(pre+"key_file", "is only used with type: x509", "expected it removed, or type: x509")
		}
		if !a.SymmetricKey.IsZero() && !validKey(a.SymmetricKey.Reveal()) {
			k.add(pre+"symmetric_key", "is not valid base64", "expected the device key exactly as shown in the Azure portal")
		}
		if !a.GroupKey.IsZero() && !validKey(a.GroupKey.Reveal()) {
			k.add(pre+"group_key", "is not valid base64", "expected the enrollment group key exactly as shown in the Azure portal")
		}
	case AttestX509:
		for _, f := range symFields {
			if f.set {
				k.add(pre+f.name, "is only used with type: symmetric_key", "expected it removed, or type: symmetric_key")
			}
		}
		if a.CertFile == "" {
			k.add(pre+"cert_file", "missing", "expected the device certificate (PEM) for type: x509")
		}
		if a.KeyFile == "" {
			k.add(pre+"key_file", "missing", "expected the device private key (PEM) for type: x509")
		}
	default:
		k.add(pre+"type", fmt.Sprintf("%q is not supported", clip(string(a.Type))), "expected symmetric_key or x509")
	}
}

func validKey(s string) bool {
	b, err := base64.StdEncoding.DecodeString(s)
	return err == nil && len(b) > 0
}

func (k *checker) hub() {
	h := &k.c.Hub
	switch h.Transport {
	case TransportMQTT, TransportMQTTWS:
	default:
		k.add("hub.transport", fmt.Sprintf("%q is not supported", clip(string(h.Transport))),
			"expected mqtt (port 8883) or mqtt-ws (port 443)")
	}
	if h.Keepalive < MinKeepalive || h.Keepalive > MaxKeepalive {
		k.add("hub.keepalive", fmt.Sprintf("%s is out of range", formatDuration(h.Keepalive)),
			fmt.Sprintf("expected between %s and %s (IoT Hub's limit)", formatDuration(MinKeepalive), formatDuration(MaxKeepalive)))
	}
	if h.TokenTTL < MinTokenTTL || h.TokenTTL > MaxTokenTTL {
		k.add("hub.token_ttl", fmt.Sprintf("%s is out of range", formatDuration(h.TokenTTL)),
			fmt.Sprintf("expected between %s and %s, like 1h", formatDuration(MinTokenTTL), formatDuration(MaxTokenTTL)))
	}
	if h.RetryCachedHubFor < 0 {
		k.add("hub.retry_cached_hub_for", fmt.Sprintf("%s is negative", formatDuration(h.RetryCachedHubFor)), "expected 0 or more, like 15m")
	}
	if h.ReprovisionMethod != "" && !validName(h.ReprovisionMethod) {
		k.add("hub.reprovision_method", fmt.Sprintf("%q has characters a method name cannot have", clip(h.ReprovisionMethod)),
			`expected letters, digits, "_", "." or "-" (or "" to disable)`)
	}
}

func (k *checker) proxy() {
	u := k.c.Proxy.URL
	if u == nil {
		return
	}
	const f, hint = "proxy.url", "expected http://host:port or http://user:password@host:port"
	switch {
	case !strings.EqualFold(u.Scheme, "http"):
		scheme := u.Scheme
		if scheme == "" {
			k.add(f, "has no scheme", hint)
			return
		}
		k.add(f, fmt.Sprintf("%q proxies are not supported", clip(scheme)), hint)
	case u.Hostname() == "":
		k.add(f, "has no host", hint)
	case u.Port() == "":
		k.add(f, fmt.Sprintf("%q has no port", clip(u.Redacted())), hint)
	case !validPort(u.Port()):
		k.add(f, fmt.Sprintf("%q has a bad port", clip(u.Redacted())), hint)
	case u.Path != "" && u.Path != "/" || u.RawQuery != "":
		k.add(f, fmt.Sprintf("%q has a path or query", clip(u.Redacted())), hint)
	}
}

func (k *checker) streams() {
	s := &k.c.Streams
	if _, inFile := k.c.lines["streams.targets"]; len(s.Targets) == 0 && !inFile {
		// (A targets key in the file was checked while decoding.)
		k.add("streams.targets", "is empty", "expected at least one stream, like ssh: 127.0.0.1:22")
	}
	for _, name := range sortedKeys(s.Targets) {
		f := "streams.targets." + clip(name)
		if !validName(name) {
			k.add(f, "the stream name has characters other than letters, digits, \"_\", \".\" and \"-\"", "expected a name like ssh")
			continue
		}
		if addr := s.Targets[name]; addr != "" { // "" was reported while decoding
			if prob := checkHostPort(addr); prob != "" {
				k.add(f, prob, hostPortHint)
			}
		} else if _, fromFile := k.c.lines[f]; !fromFile {
			k.add(f, "has no address", hostPortHint)
		}
	}
	if s.MaxConcurrent < 1 || s.MaxConcurrent > MaxStreamsLimit {
		k.add("streams.max_concurrent", fmt.Sprintf("%d is out of range", s.MaxConcurrent), fmt.Sprintf("expected 1 to %d", MaxStreamsLimit))
	}
	if s.IdleTimeout < 0 {
		k.add("streams.idle_timeout", fmt.Sprintf("%s is negative", formatDuration(s.IdleTimeout)), "expected 0 (no limit) or a duration like 30m")
	}
	if s.HandshakeTimeout <= 0 {
		k.add("streams.handshake_timeout", fmt.Sprintf("%s is not positive", formatDuration(s.HandshakeTimeout)), "expected a duration like 60s")
	}
}

func (k *checker) top() {
	c := k.c
	if c.StateDir == "" {
		k.add("state_dir", "is empty", "expected a directory like "+DefaultStateDir)
	}
	seen := map[string]int{}
	for _, r := range c.Resolve {
		e := &FieldError{File: c.File, Line: r.line, Field: "resolve", Hint: "expected host:port=ip:port, like " + DefaultGlobalEndpoint + ":443=127.0.0.1:8443"}
		if e.Line == 0 {
			e.Line = c.lineOf("resolve")
		}
		entry := r.raw
		if entry == "" {
			entry = r.From + "=" + r.To
		}
		switch {
		case r.raw != "" && !strings.Contains(r.raw, "="):
			e.Problem = fmt.Sprintf("%q has no \"=\"", clip(entry))
		case checkHostPort(r.From) != "":
			e.Problem = fmt.Sprintf("%q: the left side is not host:port", clip(entry))
		case !isIPPort(r.To):
			e.Problem = fmt.Sprintf("%q: the right side is not ip:port", clip(entry))
		default:
			key := strings.ToLower(r.From)
			if line, dup := seen[key]; dup {
				e.Problem = fmt.Sprintf("%q repeats %s (first on line %d)", clip(entry), r.From, line)
				e.Hint = "expected each host:port once"
			} else {
				seen[key] = e.Line
			}
		}
		if e.Problem != "" {
			k.errs = append(k.errs, e)
		}
	}
}

func (k *checker) log() {
	l := &k.c.Log
	switch l.Level {
	case LevelDebug, LevelInfo, LevelWarn, LevelError:
	default:
		k.add("log.level", fmt.Sprintf("%q is not a level", clip(string(l.Level))), "expected debug, info, warn or error")
	}
	switch l.Format {
	case LogText, LogJSON:
	default:
		k.add("log.format", fmt.Sprintf("%q is not supported", clip(string(l.Format))), "expected text or json")
	}
	switch l.Destination {
	case LogStderr, LogSyslog:
	case LogFile:
		if l.File == "" {
			k.addAt("log.destination", "log.file", "missing", "expected a path like /var/log/porthole/agent.log for destination: file")
		}
	default:
		k.add("log.destination", fmt.Sprintf("%q is not supported", clip(string(l.Destination))), "expected stderr, syslog or file")
	}
	if l.MaxSize < MinLogMaxSize {
		k.add("log.max_size", fmt.Sprintf("%s is too small", FormatSize(l.MaxSize)), "expected at least "+FormatSize(MinLogMaxSize))
	}
	if l.MaxFiles < 1 || l.MaxFiles > MaxLogFiles {
		k.add("log.max_files", fmt.Sprintf("%d is out of range", l.MaxFiles), fmt.Sprintf("expected 1 to %d", MaxLogFiles))
	}
}

// checkEndpoint checks "host" or "host:port"; "" when fine.
func checkEndpoint(s string) string {
	if strings.Contains(s, "://") {
		return fmt.Sprintf("%q includes a scheme", clip(s))
	}
	if strings.ContainsAny(s, ":[") {
		return checkHostPort(s)
	}
	if !validName(s) {
		return fmt.Sprintf("%q is not a host name", clip(s))
	}
	return ""
}

// checkHostPort checks "host:port"; "" when fine, else what is wrong.
func checkHostPort(s string) string {
	if s == "" {
		return "is empty"
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if !strings.Contains(s, ":") || strings.HasSuffix(err.Error(), "missing port in address") {
			return fmt.Sprintf("%q has no port", clip(s))
		}
		return fmt.Sprintf("%q is not host:port", clip(s))
	}
	if host == "" {
		return fmt.Sprintf("%q has no host", clip(s))
	}
	if !validPort(port) {
		return fmt.Sprintf("%q has a bad port", clip(s))
	}
	if net.ParseIP(host) == nil && !validName(host) {
		return fmt.Sprintf("%q is not a host name", clip(s))
	}
	return ""
}

func isIPPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	return err == nil && net.ParseIP(host) != nil && validPort(port)
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535 && p[0] != '+' && p[0] != '-'
}

// equalFoldHostPort compares host:port pairs, host case-insensitively.
func equalFoldHostPort(a, b string) bool {
	return strings.EqualFold(a, b)
}
