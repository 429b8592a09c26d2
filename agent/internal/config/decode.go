package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/porthole-iot/porthole/sdk/suggest"
)

// nodeBudget bounds how many YAML nodes one decode may visit, so aliases
// that fan out ("billion laughs") cannot blow up memory or time.
const nodeBudget = 100_000

type decoder struct {
	file   string
	cfg    *Config
	errs   []*FieldError
	budget int
}

// decode fills cfg (already holding defaults) from data and returns the
// decode problems (syntax, unknown keys, wrong types). fatal is set when the
// file could not be read as a mapping at all, so checking values would only
// add noise.
func decode(file string, data []byte, cfg *Config) (errs []*FieldError, fatal bool) {
	d := &decoder{file: file, cfg: cfg, budget: nodeBudget}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, false // empty file: defaults only; Validate reports what is missing
		}
		return []*FieldError{syntaxError(file, data, err)}, true
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.errs = append(d.errs, &FieldError{File: file, Line: extra.Line, Problem: "a second YAML document starts here",
			Hint: "expected one document (remove the extra \"---\")", positional: true})
	} else if !errors.Is(err, io.EOF) {
		d.errs = append(d.errs, syntaxError(file, data, err))
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return d.errs, false
		}
		root = root.Content[0]
	}
	if root = d.deref(root, ""); root == nil {
		return d.errs, false // a lone "~" or "null": like an empty file
	}
	if root.Kind != yaml.MappingNode {
		d.fail(root, "", "got "+kindName(root), "expected a mapping of keys, like provisioning: …")
		return d.errs, true
	}
	d.root(root)
	return d.errs, false
}

// syntaxError turns a yaml.v3 error into a FieldError. The line is the
// one syntaxLine finds in data; yaml.v3's own "yaml: line N: problem"
// (often the line before the mistake) only when that finds none.
func syntaxError(file string, data []byte, err error) *FieldError {
	msg := err.Error()
	fe := &FieldError{File: file, Hint: "expected valid YAML (check indentation and quoting)"}
	if line, rest, ok := yamlLine(msg); ok {
		fe.Line, msg = line, rest
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	if line := syntaxLine(data); line > 0 {
		fe.Line = line
	}
	fe.Problem = "syntax error: " + msg
	return fe
}

// yamlLine splits "yaml: line N: problem" (problem on one line).
func yamlLine(msg string) (line int, problem string, ok bool) {
	rest, ok := strings.CutPrefix(msg, "yaml: line ")
	if !ok {
		return 0, "", false
	}
	digits, problem, ok := strings.Cut(rest, ": ")
	if !ok || !allBytes(digits, func(c byte) bool { return c >= '0' && c <= '9' }) || strings.Contains(problem, "\n") {
		return 0, "", false
	}
	line, _ = strconv.Atoi(digits)
	return line, problem, true
}

func (d *decoder) fail(n *yaml.Node, field, problem, hint string) {
	d.errs = append(d.errs, &FieldError{File: d.file, Line: n.Line, Field: field, Problem: problem, Hint: hint, positional: true})
}

func (d *decoder) mark(field string, n *yaml.Node) {
	d.cfg.lines[field] = n.Line
}

// deref follows aliases and spends budget. It returns nil when the node is
// absent, null or the budget is spent (after reporting that once).
func (d *decoder) deref(n *yaml.Node, field string) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 100 {
			return nil
		}
		n = n.Alias
	}
	if n == nil {
		return nil
	}
	d.budget--
	if d.budget == 0 {
		d.fail(n, field, "the file expands to too many values", "expected a config file, not a YAML bomb")
	}
	if d.budget <= 0 {
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", clip(n.Value))
	}
	return "something else"
}

// clip shortens a value quoted in an error message.
func clip(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

type fieldFunc func(field string, v *yaml.Node)

// mapping walks a mapping node, calling the handler of each known key with
// the dotted field name and the (non-null) value. Unknown and duplicate keys
// are reported. known lists keys in documentation order.
func (d *decoder) mapping(n *yaml.Node, prefix string, known []string, h map[string]fieldFunc) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, prefix, "got "+kindName(n), "expected a mapping of keys")
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode {
			k = d.deref(k, prefix)
			if k == nil {
				continue
			}
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(k, prefix, "a key is "+kindName(k), "expected plain key names")
			continue
		}
		name := k.Value
		field := join(prefix, name)
		if k.Tag == "!!merge" {
			d.fail(k, prefix, "YAML merge keys (<<) are not supported", "expected each key written out")
			continue
		}
		if line, dup := seen[name]; dup {
			d.fail(k, field, fmt.Sprintf("duplicate key (first set on line %d)", line), "expected each key once")
			continue
		}
		seen[name] = k.Line
		fn, ok := h[name]
		if !ok {
			d.fail(k, join(prefix, clip(name)), "unknown key", unknownHint(prefix, name, known))
			continue
		}
		d.cfg.lines[field] = k.Line
		if v = d.deref(v, field); v == nil {
			continue
		}
		if v.Kind == yaml.ScalarNode {
			d.mark(field, v) // sections keep the line of their key
		}
		fn(field, v)
	}
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// allFields lists every leaf key, to suggest a key placed in the wrong section.
var allFields = []string{
	"provisioning.global_endpoint", "provisioning.id_scope", "provisioning.registration_id",
	"provisioning.transport", "provisioning.attestation", "provisioning.payload",
	"provisioning.attestation.type", "provisioning.attestation.symmetric_key",
	"provisioning.attestation.symmetric_key_file", "provisioning.attestation.group_key",
	"provisioning.attestation.group_key_file", "provisioning.attestation.cert_file",
	"provisioning.attestation.key_file",
	"hub.transport", "hub.keepalive", "hub.retry_cached_hub_for", "hub.token_ttl", "hub.reprovision_method",
	"proxy.url",
	"streams.targets", "streams.max_concurrent", "streams.idle_timeout", "streams.handshake_timeout",
	"streams.mux.enabled", "streams.mux.max_conns_per_stream", "streams.mux.max_conns", "streams.mux.window", "streams.socks.allow",
	"streams.keepalive.interval", "streams.keepalive.timeout",
	"streams.audit.file", "streams.audit.max_size", "streams.audit.max_files",
	"state_dir", "ca_file", "resolve",
	"log.level", "log.format", "log.destination", "log.file", "log.max_size", "log.max_files",
}

func init() { allFields = append(allFields, healthFields...) }

func unknownHint(prefix, name string, known []string) string {
	if s := suggest.Closest(name, known); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	// The key may exist in another section.
	for _, f := range allFields {
		parent, leaf := "", f
		if i := strings.LastIndexByte(f, '.'); i >= 0 {
			parent, leaf = f[:i], f[i+1:]
		}
		if parent != prefix && leaf == strings.ToLower(name) {
			where := "at the top level"
			if parent != "" {
				where = "under " + parent
			}
			return fmt.Sprintf("did you mean %s? (%q belongs %s)", f, leaf, where)
		}
	}
	return "expected one of " + strings.Join(known, ", ")
}

func (d *decoder) str(field string, v *yaml.Node) (string, bool) {
	if v.Kind != yaml.ScalarNode {
		d.fail(v, field, "got "+kindName(v), "expected a single value")
		return "", false
	}
	return v.Value, true
}

func (d *decoder) setStr(dst *string) fieldFunc {
	return func(field string, v *yaml.Node) {
		if s, ok := d.str(field, v); ok {
			*dst = s
		}
	}
}

func setEnum[T ~string](d *decoder, dst *T) fieldFunc {
	return func(field string, v *yaml.Node) {
		if s, ok := d.str(field, v); ok {
			*dst = T(s)
		}
	}
}

func (d *decoder) setSecret(dst *Secret) fieldFunc {
	return func(field string, v *yaml.Node) {
		if v.Kind != yaml.ScalarNode {
			d.fail(v, field, "got "+kindName(v), "expected the key as one base64 string")
			return
		}
		*dst = NewSecret(strings.TrimSpace(v.Value))
	}
}

func (d *decoder) setBool(dst *bool) fieldFunc {
	return func(field string, v *yaml.Node) {
		if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
			d.fail(v, field, kindName(v)+" is not true or false", "expected true or false")
			return
		}
		var b bool
		if err := v.Decode(&b); err != nil {
			d.fail(v, field, fmt.Sprintf("%q is not true or false", clip(v.Value)), "expected true or false")
			return
		}
		*dst = b
	}
}

func (d *decoder) setInt(dst *int, example string) fieldFunc {
	return func(field string, v *yaml.Node) {
		if v.Kind != yaml.ScalarNode || v.Tag != "!!int" {
			d.fail(v, field, kindName(v)+" is not a whole number", "expected a whole number like "+example)
			return
		}
		n, err := strconv.ParseInt(v.Value, 0, 32)
		if err != nil {
			d.fail(v, field, fmt.Sprintf("%q is out of range", clip(v.Value)), "expected a whole number like "+example)
			return
		}
		*dst = int(n)
	}
}

func (d *decoder) setDuration(dst *time.Duration, example string) fieldFunc {
	return func(field string, v *yaml.Node) {
		if v.Kind != yaml.ScalarNode {
			d.fail(v, field, "got "+kindName(v), "expected a duration like "+example)
			return
		}
		s := strings.TrimSpace(v.Value)
		if s == "0" {
			*dst = 0
			return
		}
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			d.fail(v, field, fmt.Sprintf("%q has no unit", clip(s)), "expected a duration like "+example+" (units: s, m, h)")
			return
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			d.fail(v, field, fmt.Sprintf("%q is not a duration", clip(s)), "expected a duration like "+example+" (units: s, m, h)")
			return
		}
		*dst = dur
	}
}

func (d *decoder) setSize(dst *int64, example string) fieldFunc {
	return func(field string, v *yaml.Node) {
		if v.Kind != yaml.ScalarNode {
			d.fail(v, field, "got "+kindName(v), "expected a size like "+example)
			return
		}
		n, err := ParseSize(v.Value)
		if err != nil {
			d.fail(v, field, fmt.Sprintf("%q is not a size", clip(v.Value)), "expected a size like "+example+" (units: KiB, MiB)")
			return
		}
		*dst = n
	}
}

func (d *decoder) root(n *yaml.Node) {
	c := d.cfg
	known := []string{"provisioning", "hub", "proxy", "streams", "state_dir", "ca_file", "resolve", "log", "health", "metrics"}
	d.mapping(n, "", known, map[string]fieldFunc{
		"provisioning": d.provisioning,
		"hub":          d.hub,
		"proxy":        d.proxy,
		"streams":      d.streams,
		"state_dir":    d.setStr(&c.StateDir),
		"ca_file":      d.setStr(&c.CAFile),
		"resolve":      d.resolve,
		"log":          d.log,
		"health":       d.health,
		"metrics":      d.metrics,
	})
}

func (d *decoder) provisioning(field string, n *yaml.Node) {
	p := &d.cfg.Provisioning
	known := []string{"global_endpoint", "id_scope", "registration_id", "transport", "attestation", "payload"}
	d.mapping(n, field, known, map[string]fieldFunc{
		"global_endpoint": d.setStr(&p.GlobalEndpoint),
		"id_scope":        d.setStr(&p.IDScope),
		"registration_id": d.setStr(&p.RegistrationID),
		"transport":       setEnum(d, &p.Transport),
		"attestation":     d.attestation,
		"payload":         d.payload,
	})
}

func (d *decoder) attestation(field string, n *yaml.Node) {
	a := &d.cfg.Provisioning.Attestation
	known := []string{"type", "symmetric_key", "symmetric_key_file", "group_key", "group_key_file", "cert_file", "key_file"}
	d.mapping(n, field, known, map[string]fieldFunc{
		"type":               setEnum(d, &a.Type),
		"symmetric_key":      d.setSecret(&a.SymmetricKey),
		"symmetric_key_file": d.setStr(&a.SymmetricKeyFile),
		"group_key":          d.setSecret(&a.GroupKey),
		"group_key_file":     d.setStr(&a.GroupKeyFile),
		"cert_file":          d.setStr(&a.CertFile),
		"key_file":           d.setStr(&a.KeyFile),
	})
}

func (d *decoder) payload(field string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, field, "got "+kindName(n), "expected a mapping (it is sent to DPS as a JSON object)")
		return
	}
	v, ok := d.toJSON(field, n)
	if !ok {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		d.fail(n, field, "cannot be encoded as JSON: "+err.Error(), "expected plain strings, numbers, true/false, lists and mappings")
		return
	}
	d.cfg.Provisioning.Payload = b
}

// toJSON converts a YAML node to a value encoding/json can marshal,
// keeping key order irrelevant (JSON objects are unordered).
func (d *decoder) toJSON(field string, n *yaml.Node) (any, bool) {
	n = d.deref(n, field)
	if n == nil {
		return nil, d.budget > 0
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		ok := true
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := d.deref(n.Content[i], field)
			if k == nil || k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
				line := n.Content[i].Line
				d.errs = append(d.errs, &FieldError{File: d.file, Line: line, Field: field,
					Problem: "a key is not a plain value", Hint: "expected string keys", positional: true})
				ok = false
				continue
			}
			sub := join(field, clip(k.Value))
			if _, dup := m[k.Value]; dup {
				d.fail(k, sub, "duplicate key", "expected each key once")
				ok = false
				continue
			}
			v, vok := d.toJSON(sub, n.Content[i+1])
			ok = ok && vok
			m[k.Value] = v
		}
		return m, ok
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		ok := true
		for i, c := range n.Content {
			v, vok := d.toJSON(field+"["+strconv.Itoa(i)+"]", c)
			ok = ok && vok
			s = append(s, v)
		}
		return s, ok
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err == nil {
				return b, true
			}
		case "!!int":
			if i, err := strconv.ParseInt(n.Value, 0, 64); err == nil {
				return i, true
			}
			if u, err := strconv.ParseUint(n.Value, 0, 64); err == nil {
				return u, true
			}
			d.fail(n, field, fmt.Sprintf("%q is too large", clip(n.Value)), "expected a number that fits in 64 bits (or quote it)")
			return nil, false
		case "!!float":
			var f float64
			if err := n.Decode(&f); err == nil {
				if math.IsInf(f, 0) || math.IsNaN(f) {
					d.fail(n, field, fmt.Sprintf("%q has no JSON form", clip(n.Value)), "expected a finite number (or quote it)")
					return nil, false
				}
				return f, true
			}
		}
		return n.Value, true
	}
	d.fail(n, field, "got "+kindName(n), "expected a plain value")
	return nil, false
}

func (d *decoder) hub(field string, n *yaml.Node) {
	h := &d.cfg.Hub
	known := []string{"transport", "keepalive", "retry_cached_hub_for", "token_ttl", "reprovision_method", "lookup_first"}
	d.mapping(n, field, known, map[string]fieldFunc{
		"transport":            setEnum(d, &h.Transport),
		"keepalive":            d.setDuration(&h.Keepalive, "4m"),
		"retry_cached_hub_for": d.setDuration(&h.RetryCachedHubFor, "15m"),
		"token_ttl":            d.setDuration(&h.TokenTTL, "1h"),
		"reprovision_method":   d.setStr(&h.ReprovisionMethod),
		"lookup_first":         d.setBool(&h.LookupFirst),
	})
}

func (d *decoder) proxy(field string, n *yaml.Node) {
	known := []string{"url"}
	d.mapping(n, field, known, map[string]fieldFunc{
		"url": func(field string, v *yaml.Node) {
			s, ok := d.str(field, v)
			if !ok || strings.TrimSpace(s) == "" {
				return
			}
			s = strings.TrimSpace(s)
			if !strings.Contains(s, "://") {
				// Not quoted: it may hold a password.
				d.fail(v, field, "has no scheme", "expected http://host:port or http://user:password@host:port")
				return
			}
			u, err := url.Parse(s)
			if err != nil {
				// url errors quote the input, which may hold a password.
				d.fail(v, field, "is not a valid URL", "expected http://host:port or http://user:password@host:port")
				return
			}
			d.cfg.Proxy.URL = u
		},
	})
}

func (d *decoder) streams(field string, n *yaml.Node) {
	s := &d.cfg.Streams
	known := []string{"targets", "max_concurrent", "idle_timeout", "handshake_timeout", "mux", "socks", "keepalive", "audit"}
	d.mapping(n, field, known, map[string]fieldFunc{
		"mux":               d.streamsMux,
		"socks":             d.streamsSocks,
		"keepalive":         d.streamsKeepalive,
		"audit":             d.streamsAudit,
		"targets":           d.targets,
		"max_concurrent":    d.setInt(&s.MaxConcurrent, "8"),
		"idle_timeout":      d.setDuration(&s.IdleTimeout, "30m"),
		"handshake_timeout": d.setDuration(&s.HandshakeTimeout, "60s"),
	})
}

func (d *decoder) targets(field string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, field, "got "+kindName(n), "expected a mapping of stream name to host:port, like ssh: 127.0.0.1:22")
		return
	}
	if len(n.Content) == 0 {
		d.fail(n, field, "is empty", "expected at least one stream, like ssh: 127.0.0.1:22")
	}
	// An explicit map replaces the default one.
	t := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.deref(n.Content[i], field)
		if k == nil || k.Kind != yaml.ScalarNode {
			d.errs = append(d.errs, &FieldError{File: d.file, Line: n.Content[i].Line, Field: field,
				Problem: "a stream name is not a plain value", Hint: "expected names like ssh", positional: true})
			continue
		}
		sub := join(field, clip(k.Value))
		if _, dup := t[k.Value]; dup {
			d.fail(k, sub, "duplicate stream name", "expected each name once")
			continue
		}
		d.cfg.lines[sub] = k.Line
		v := d.deref(n.Content[i+1], sub)
		if v == nil {
			d.fail(k, sub, "has no address", "expected host:port, like 127.0.0.1:22")
			t[k.Value] = ""
			continue
		}
		d.mark(sub, v)
		a, ok := d.str(sub, v) // "" after a reported error: Validate skips it
		if ok && a == "" {
			d.fail(v, sub, "has no address", "expected host:port, like 127.0.0.1:22")
		}
		t[k.Value] = a
	}
	d.cfg.Streams.Targets = t
}

func (d *decoder) resolve(field string, n *yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, field, "got "+kindName(n), "expected a list of host:port=ip:port entries")
		return
	}
	var out []Resolve
	for _, c := range n.Content {
		c = d.deref(c, field)
		if c == nil {
			continue
		}
		s, ok := d.str(field, c)
		if !ok {
			continue
		}
		s = strings.TrimSpace(s)
		from, to, _ := strings.Cut(s, "=")
		out = append(out, Resolve{From: strings.TrimSpace(from), To: strings.TrimSpace(to), raw: s, line: c.Line})
	}
	d.cfg.Resolve = out
}

func (d *decoder) log(field string, n *yaml.Node) {
	l := &d.cfg.Log
	known := []string{"level", "format", "destination", "file", "max_size", "max_files"}
	d.mapping(n, field, known, map[string]fieldFunc{
		"level":       setEnum(d, &l.Level),
		"format":      setEnum(d, &l.Format),
		"destination": setEnum(d, &l.Destination),
		"file":        d.setStr(&l.File),
		"max_size":    d.setSize(&l.MaxSize, "1MiB"),
		"max_files":   d.setInt(&l.MaxFiles, "3"),
	})
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
