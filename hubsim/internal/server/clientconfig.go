package server

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/porthole-iot/porthole/hubsim/internal/pki/atomicfile"
	"github.com/porthole-iot/porthole/hubsim/internal/simconfig"
)

// Client files hubsim writes next to its status file, so a newcomer points
// the operator CLI and the agent at it without editing anything.
const (
	// OperatorConfigName is a `porthole --config` file for the first hub.
	OperatorConfigName = "porthole.yaml"
	// AgentSnippetName holds the agent's ca_file, resolve lines and the
	// DPS endpoint; it ends with the provisioning section, so a device's
	// own provisioning keys can be appended to it.
	AgentSnippetName = "agent-snippet.yaml"
)

// OperatorConfigNameFor is the `porthole --config` file for one hub.
func OperatorConfigNameFor(hubHost string) string { return "porthole-" + hubHost + ".yaml" }

// ClientFiles are the client configuration files of the prepared sim,
// keyed by file name. They hold service connection strings: write them
// 0600.
func (p *Prepared) ClientFiles() map[string][]byte {
	cfg := p.Config
	ip := dialIP(cfg.Listen)
	https, mqtt := strconv.Itoa(p.Server.HTTPSPort()), strconv.Itoa(p.Server.MQTTPort())
	to := func(port string) string { return net.JoinHostPort(ip, port) }
	streamHost := func(hubHost string) string {
		if cfg.Streams.HostName != "" {
			return cfg.Streams.HostName
		}
		return hubHost
	}
	dpsCS, _ := cfg.DPS.ConnectionString(simconfig.PolicyDPSOwner)

	// The operator CLI reaches DPS and the hubs on 443 and the streaming
	// endpoint on the HTTPS port its URLs name.
	var opResolve []string
	opResolve = appendResolve(opResolve, cfg.DPS.HostName, "443", to(https))
	for _, h := range cfg.Hubs {
		opResolve = appendResolve(opResolve, h.HostName, "443", to(https))
		opResolve = appendResolve(opResolve, streamHost(h.HostName), https, to(https))
	}
	files := map[string][]byte{}
	for i, h := range cfg.Hubs {
		cs, _ := h.ConnectionString(simconfig.PolicyIoTHubOwner)
		var b strings.Builder
		fmt.Fprintf(&b, "# porthole --config for hubsim's hub %s (written by hubsim; valid while it runs on these ports).\n", h.HostName)
		fmt.Fprintf(&b, "connection_string: %s\n", yamlString(cs))
		fmt.Fprintf(&b, "dps_connection_string: %s\n", yamlString(dpsCS))
		fmt.Fprintf(&b, "ca_file: %s\n", yamlString(p.PKI.CAFile()))
		writeResolve(&b, opResolve)
		files[OperatorConfigNameFor(h.HostName)] = []byte(b.String())
		if i == 0 {
			files[OperatorConfigName] = []byte(b.String())
		}
	}

	// The agent reaches DPS on 443 and its hub on 8883 (MQTT), 443 (MQTT
	// over WebSocket) and the streaming endpoint's HTTPS port.
	var agResolve []string
	agResolve = appendResolve(agResolve, cfg.DPS.GlobalEndpoint, "443", to(https))
	for _, h := range cfg.Hubs {
		agResolve = appendResolve(agResolve, h.HostName, "8883", to(mqtt))
		agResolve = appendResolve(agResolve, h.HostName, "443", to(https))
		agResolve = appendResolve(agResolve, streamHost(h.HostName), https, to(https))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Agent settings for hubsim (written by hubsim; valid while it runs on these ports).\n")
	fmt.Fprintf(&b, "# Append the device's own provisioning keys (registration_id, attestation) indented\n")
	fmt.Fprintf(&b, "# under provisioning, then streams and state_dir, or copy these lines into agent.yaml.\n")
	fmt.Fprintf(&b, "ca_file: %s\n", yamlString(p.PKI.CAFile()))
	writeResolve(&b, agResolve)
	fmt.Fprintf(&b, "provisioning:\n")
	fmt.Fprintf(&b, "  global_endpoint: %s\n", yamlString(cfg.DPS.GlobalEndpoint))
	fmt.Fprintf(&b, "  id_scope: %s\n", yamlString(cfg.DPS.IDScope))
	files[AgentSnippetName] = []byte(b.String())
	return files
}

// WriteClientFiles writes ClientFiles into dir (0600, crash-safe) and
// returns the paths written.
func (p *Prepared) WriteClientFiles(dir string) ([]string, error) {
	files := p.ClientFiles()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	var paths []string
	for _, n := range names {
		path := filepath.Join(dir, n)
		if err := atomicfile.WriteFile(path, files[n], 0o600); err != nil {
			return paths, fmt.Errorf("server: client file: %w", err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// dialIP is the address clients on this machine dial: the first listen
// address, loopback for an unspecified one.
func dialIP(listen []string) string {
	if len(listen) == 0 {
		return "127.0.0.1"
	}
	ip := net.ParseIP(listen[0])
	switch {
	case ip == nil:
		return listen[0]
	case ip.IsUnspecified() && ip.To4() == nil:
		return "::1"
	case ip.IsUnspecified():
		return "127.0.0.1"
	}
	return ip.String()
}

// appendResolve adds "host:port=to" once.
func appendResolve(list []string, host, port, to string) []string {
	if host == "" {
		return list
	}
	line := net.JoinHostPort(strings.ToLower(host), port) + "=" + to
	if slices.Contains(list, line) {
		return list
	}
	return append(list, line)
}

func writeResolve(b *strings.Builder, lines []string) {
	fmt.Fprintf(b, "resolve:\n")
	for _, l := range lines {
		fmt.Fprintf(b, "  - %s\n", yamlString(l))
	}
}

// yamlString quotes s as a YAML double-quoted scalar (JSON string syntax
// is valid YAML).
func yamlString(s string) string { return strconv.Quote(s) }
