package config

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Redacted renders the effective config as YAML in the file's layout, with
// every secret (keys, proxy password) replaced by "[redacted]". Safe to log
// or to print from `porthole-agent validate`.
//
// The YAML is written by hand (see yamlScalar) rather than with yaml.v3's
// encoder: the agent only ever decodes YAML, and leaving the encoder out
// keeps about 0.13 MB out of the device binary (cmd/porthole-agent/SIZE.md).
func (c *Config) Redacted() string {
	p := &c.Provisioning
	a := &p.Attestation
	w := &yamlWriter{}
	w.section(0, "provisioning")
	w.str(1, "global_endpoint", p.GlobalEndpoint)
	w.str(1, "id_scope", p.IDScope)
	w.str(1, "registration_id", p.RegistrationID)
	w.str(1, "transport", string(p.Transport))
	w.section(1, "attestation")
	w.str(2, "type", string(a.Type))
	w.str(2, "symmetric_key", a.SymmetricKey.String())
	w.str(2, "symmetric_key_file", a.SymmetricKeyFile)
	w.str(2, "group_key", a.GroupKey.String())
	w.str(2, "group_key_file", a.GroupKeyFile)
	w.str(2, "cert_file", a.CertFile)
	w.str(2, "key_file", a.KeyFile)
	w.raw(1, "payload", payloadYAML(p.Payload))

	w.section(0, "hub")
	w.str(1, "transport", string(c.Hub.Transport))
	w.str(1, "keepalive", formatDuration(c.Hub.Keepalive))
	w.str(1, "retry_cached_hub_for", formatDuration(c.Hub.RetryCachedHubFor))
	w.str(1, "token_ttl", formatDuration(c.Hub.TokenTTL))
	w.raw(1, "reprovision_method", quoteDouble(c.Hub.ReprovisionMethod))
	w.raw(1, "lookup_first", strconv.FormatBool(c.Hub.LookupFirst))

	w.section(0, "proxy")
	w.str(1, "url", c.Proxy.String())

	w.section(0, "streams")
	if len(c.Streams.Targets) == 0 {
		w.raw(1, "targets", "{}")
	} else {
		w.section(1, "targets")
		for _, k := range sortedKeys(c.Streams.Targets) {
			w.str(2, k, c.Streams.Targets[k])
		}
	}
	w.raw(1, "max_concurrent", strconv.Itoa(c.Streams.MaxConcurrent))
	w.str(1, "idle_timeout", formatDuration(c.Streams.IdleTimeout))
	w.str(1, "handshake_timeout", formatDuration(c.Streams.HandshakeTimeout))

	w.str(0, "state_dir", c.StateDir)
	w.str(0, "ca_file", c.CAFile)
	if len(c.Resolve) == 0 {
		w.raw(0, "resolve", "[]")
	} else {
		w.section(0, "resolve")
		for _, r := range c.Resolve {
			w.item(1, yamlScalar(r.From+"="+r.To))
		}
	}

	w.section(0, "log")
	w.str(1, "level", string(c.Log.Level))
	w.str(1, "format", string(c.Log.Format))
	w.str(1, "destination", string(c.Log.Destination))
	w.str(1, "file", c.Log.File)
	w.str(1, "max_size", FormatSize(c.Log.MaxSize))
	w.raw(1, "max_files", strconv.Itoa(c.Log.MaxFiles))
	w.healthMetrics(c)
	return w.b.String()
}

// String is Redacted, so printing a Config or *Config never leaks a secret.
func (c Config) String() string { return c.Redacted() }

// GoString keeps %#v from dumping secrets.
func (c Config) GoString() string { return c.Redacted() }

// String shows the proxy URL with its password masked.
func (p Proxy) String() string {
	if p.URL == nil {
		return ""
	}
	return p.URL.Redacted()
}

// formatDuration drops Go's trailing zero units ("15m0s" → "15m").
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// yamlWriter writes block-style YAML, two spaces per level.
type yamlWriter struct{ b strings.Builder }

func (w *yamlWriter) key(level int, k string) {
	w.indent(level)
	s := yamlScalar(k)
	if len(s) > maxImplicitKey {
		// Too long for an implicit key: use the explicit "? key" form.
		w.b.WriteString("? ")
		w.b.WriteString(s)
		w.b.WriteByte('\n')
		w.indent(level)
		s = ""
	}
	w.b.WriteString(s)
	w.b.WriteByte(':')
}

// maxImplicitKey keeps under YAML's 1024-character limit on an implicit
// key (YAML 1.2 section 7.4.2).
const maxImplicitKey = 1000

func (w *yamlWriter) indent(level int) {
	for range level {
		w.b.WriteString("  ")
	}
}

// section starts a nested mapping or sequence under k.
func (w *yamlWriter) section(level int, k string) {
	w.key(level, k)
	w.b.WriteByte('\n')
}

// raw writes k with a value that is already YAML.
func (w *yamlWriter) raw(level int, k, v string) {
	w.key(level, k)
	w.b.WriteByte(' ')
	w.b.WriteString(v)
	w.b.WriteByte('\n')
}

// str writes k with a string value.
func (w *yamlWriter) str(level int, k, v string) { w.raw(level, k, yamlScalar(v)) }

// item writes one sequence entry that is already YAML.
func (w *yamlWriter) item(level int, v string) {
	w.indent(level)
	w.b.WriteString("- ")
	w.b.WriteString(v)
	w.b.WriteByte('\n')
}

// yamlScalar renders s as a YAML scalar that a YAML parser reads back as
// exactly the string s: plain when that is unambiguous, else single-quoted
// when s is printable on one line, else double-quoted with escapes. The
// plain test is deliberately narrow (a quoted scalar is always correct; a
// plain one that a parser would read as a number, bool, null or
// timestamp would not be).
func yamlScalar(s string) string {
	if s == "" {
		return `""`
	}
	if plainSafe(s) {
		return s
	}
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return quoteDouble(s)
		}
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// plainSafe reports whether s can be written as a plain YAML scalar that
// reads back as the string s in both YAML 1.1 and 1.2 parsers.
func plainSafe(s string) bool {
	if s == "" || s[len(s)-1] == ':' {
		return false
	}
	c0 := s[0]
	if !isAlnum(c0) && c0 != '/' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && !strings.ContainsRune("._/:@+=%~-", rune(c)) {
			return false
		}
	}
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "y", "n", "null":
		return false
	}
	if c0 >= '0' && c0 <= '9' {
		// Numbers in any base, floats (YAML ignores '_' in them, as
		// in "1_000" or even "0_"), dates and times.
		n := strings.ReplaceAll(s, "_", "")
		if _, err := strconv.ParseFloat(n, 64); err == nil {
			return false
		}
		if _, err := strconv.ParseUint(n, 0, 64); err == nil {
			return false
		}
		if strings.Contains(s, "-") {
			return false // a date or a time stamp
		}
		if strings.Trim(s, "0123456789:._") == "" {
			// YAML 1.1 sexagesimal numbers ("1:20",
			// "1:20.5"); an address like 127.0.0.1:22 stays plain.
			colon, dot := strings.LastIndexByte(s, ':'), strings.LastIndexByte(s, '.')
			if colon >= 0 && (dot < 0 || strings.Count(s, ".") == 1 && dot > colon) {
				return false
			}
		}
	}
	return true
}

// quoteDouble renders s as a double-quoted YAML scalar: printable
// characters as they are, everything else as a \u or \U escape (YAML 1.2
// section 5.7).
func quoteDouble(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		writeRune(&b, r)
	}
	b.WriteByte('"')
	return b.String()
}

// writeRune writes r inside a double-quoted scalar, escaping it unless it
// is printable.
func writeRune(b *strings.Builder, r rune) {
	const hex = "0123456789abcdef"
	switch {
	case r != utf8.RuneError && unicode.IsPrint(r):
		b.WriteRune(r)
	case r <= 0xffff:
		b.WriteString(`\u`)
		for sh := 12; sh >= 0; sh -= 4 {
			b.WriteByte(hex[r>>sh&0xf])
		}
	default:
		b.WriteString(`\U`)
		for sh := 28; sh >= 0; sh -= 4 {
			b.WriteByte(hex[r>>sh&0xf])
		}
	}
}

// payloadYAML renders the DPS payload (JSON, which is YAML) on one line in
// flow style, with a space after each ':' and ',' as YAML's flow style
// writes them, and with characters YAML does not allow raw (DEL, C1
// controls) escaped.
func payloadYAML(p json.RawMessage) string {
	if len(p) == 0 {
		return "null"
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, p); err != nil {
		return quoteDouble(string(p))
	}
	var b strings.Builder
	inStr, esc := false, false
	for _, r := range compact.String() {
		switch {
		case esc:
			esc = false
		case inStr && r == '\\':
			esc = true
		case r == '"':
			inStr = !inStr
		case !inStr && (r == ':' || r == ','):
			b.WriteRune(r)
			b.WriteByte(' ')
			continue
		}
		writeRune(&b, r)
	}
	return b.String()
}
