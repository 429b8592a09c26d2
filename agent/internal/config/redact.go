package config

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Redacted renders the effective config as YAML in the file's layout, with
// every secret (keys, proxy password) replaced by "[redacted]". Safe to log
// or to print from `porthole-agent validate`.
func (c *Config) Redacted() string {
	root := &yaml.Node{Kind: yaml.MappingNode}
	p := &c.Provisioning
	a := &p.Attestation
	att := mapNode(
		"type", str(string(a.Type)),
		"symmetric_key", secretNode(a.SymmetricKey),
		"symmetric_key_file", str(a.SymmetricKeyFile),
		"group_key", secretNode(a.GroupKey),
		"group_key_file", str(a.GroupKeyFile),
		"cert_file", str(a.CertFile),
		"key_file", str(a.KeyFile),
	)
	prov := mapNode(
		"global_endpoint", str(p.GlobalEndpoint),
		"id_scope", str(p.IDScope),
		"registration_id", str(p.RegistrationID),
		"transport", str(string(p.Transport)),
		"attestation", att,
		"payload", payloadNode(p.Payload),
	)
	hub := mapNode(
		"transport", str(string(c.Hub.Transport)),
		"keepalive", dur(c.Hub.Keepalive),
		"retry_cached_hub_for", dur(c.Hub.RetryCachedHubFor),
		"reprovision_method", &yaml.Node{Kind: yaml.ScalarNode, Value: c.Hub.ReprovisionMethod, Style: yaml.DoubleQuotedStyle},
		"lookup_first", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(c.Hub.LookupFirst)},
	)
	proxyURL := c.Proxy.String()
	targets := &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range sortedKeys(c.Streams.Targets) {
		targets.Content = append(targets.Content, str(k), str(c.Streams.Targets[k]))
	}
	streams := mapNode(
		"targets", targets,
		"max_concurrent", num(c.Streams.MaxConcurrent),
		"idle_timeout", dur(c.Streams.IdleTimeout),
		"handshake_timeout", dur(c.Streams.HandshakeTimeout),
	)
	resolve := &yaml.Node{Kind: yaml.SequenceNode}
	for _, r := range c.Resolve {
		resolve.Content = append(resolve.Content, str(r.From+"="+r.To))
	}
	log := mapNode(
		"level", str(string(c.Log.Level)),
		"format", str(string(c.Log.Format)),
		"destination", str(string(c.Log.Destination)),
		"file", str(c.Log.File),
		"max_size", str(FormatSize(c.Log.MaxSize)),
		"max_files", num(c.Log.MaxFiles),
	)
	root.Content = append(root.Content,
		str("provisioning"), prov,
		str("hub"), hub,
		str("proxy"), mapNode("url", str(proxyURL)),
		str("streams"), streams,
		str("state_dir"), str(c.StateDir),
		str("ca_file"), str(c.CAFile),
		str("resolve"), resolve,
		str("log"), log,
	)
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return "# cannot render config: " + err.Error() + "\n"
	}
	_ = enc.Close()
	return b.String()
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

func mapNode(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1].(*yaml.Node)
		n.Content = append(n.Content, str(kv[i].(string)), v)
	}
	return n
}

func str(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	return n
}

func num(i int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(i)}
}

func dur(d time.Duration) *yaml.Node {
	return str(formatDuration(d))
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

func secretNode(s Secret) *yaml.Node { return str(s.String()) }

func payloadNode(p json.RawMessage) *yaml.Node {
	if len(p) == 0 {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	}
	// JSON is YAML: show it in flow style on one line.
	var n yaml.Node
	if err := yaml.Unmarshal(p, &n); err != nil || len(n.Content) == 0 {
		return str(string(p))
	}
	v := n.Content[0]
	v.Style = yaml.FlowStyle
	return v
}
