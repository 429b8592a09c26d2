package server

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/porthole-iot/porthole/hubsim/internal/pki/atomicfile"
	"github.com/porthole-iot/porthole/hubsim/internal/simconfig"
)

// Status is what a user (or a test harness) needs to talk to a running
// hubsim. It is written as the --status-file JSON and printed as the
// startup banner. It holds service connection strings, which contain keys:
// it goes to stdout and a 0600 file by design, never to logs.
type Status struct {
	CAFile string `json:"ca_file"`
	// AdminToken authenticates the admin API (/hubsim/…) and /metrics:
	// "Authorization: Bearer <admin_token>".
	AdminToken string `json:"admin_token"`
	// ClientFiles are the ready client configurations written next to the
	// status file (OperatorConfigName, AgentSnippetName, one per hub).
	ClientFiles []string    `json:"client_files,omitempty"`
	Ports       StatusPorts `json:"ports"`
	DPS         StatusDPS   `json:"dps"`
	Hubs        []StatusHub `json:"hubs"`
	// Pprof is the address of Go's runtime profiles (/debug/pprof/) when
	// hubsim was started with -pprof; empty otherwise.
	Pprof string `json:"pprof,omitempty"`
}

// StatusPorts are the bound ports.
type StatusPorts struct {
	HTTPS int `json:"https"`
	MQTT  int `json:"mqtt"`
}

// StatusDPS describes the provisioning service.
type StatusDPS struct {
	IDScope                 string `json:"id_scope"`
	GlobalEndpoint          string `json:"global_endpoint"`
	ServiceConnectionString string `json:"service_connection_string"`
}

// StatusHub describes one hub.
type StatusHub struct {
	Name                    string `json:"name"`
	HostName                string `json:"hostname"`
	ServiceConnectionString string `json:"service_connection_string"`
}

// NewStatus builds the status of a sim running cfg (with keys filled by
// EnsureKeys) on the given ports, trusting caFile.
func NewStatus(cfg *simconfig.Config, caFile string, httpsPort, mqttPort int) Status {
	st := Status{
		CAFile: caFile,
		Ports:  StatusPorts{HTTPS: httpsPort, MQTT: mqttPort},
		DPS: StatusDPS{
			IDScope:        cfg.DPS.IDScope,
			GlobalEndpoint: cfg.DPS.GlobalEndpoint,
		},
		Hubs: []StatusHub{},
	}
	st.DPS.ServiceConnectionString, _ = cfg.DPS.ConnectionString(simconfig.PolicyDPSOwner)
	for _, h := range cfg.Hubs {
		cs, _ := h.ConnectionString(simconfig.PolicyIoTHubOwner)
		st.Hubs = append(st.Hubs, StatusHub{Name: h.Name, HostName: h.HostName, ServiceConnectionString: cs})
	}
	return st
}

// WriteStatusFile writes st as JSON to path atomically, mode 0600 (it
// holds keys).
func WriteStatusFile(path string, st Status) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("server: status: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("server: status file: %w", err)
	}
	return nil
}

// WriteBanner prints what a user needs to point clients at hubsim.
func (st Status) WriteBanner(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "hubsim is running\n\n")
	fmt.Fprintf(&b, "  trust this CA:     %s\n", st.CAFile)
	fmt.Fprintf(&b, "  ports:             https/wss %d, mqtt %d\n", st.Ports.HTTPS, st.Ports.MQTT)
	if st.Ports.HTTPS != 443 || st.Ports.MQTT != 8883 {
		fmt.Fprintf(&b, "                     (Azure SDKs reach only 443 and 8883; use these ports with clients that take a port)\n")
	}
	fmt.Fprintf(&b, "\nDPS\n")
	fmt.Fprintf(&b, "  id scope:          %s\n", st.DPS.IDScope)
	fmt.Fprintf(&b, "  global endpoint:   %s\n", st.DPS.GlobalEndpoint)
	fmt.Fprintf(&b, "  service:           %s\n", st.DPS.ServiceConnectionString)
	for _, h := range st.Hubs {
		fmt.Fprintf(&b, "\nIoT hub %s (%s)\n", h.Name, h.HostName)
		fmt.Fprintf(&b, "  service:           %s\n", h.ServiceConnectionString)
	}
	if len(st.ClientFiles) > 0 {
		fmt.Fprintf(&b, "\nready client configuration (porthole --config, agent settings)\n")
		for _, f := range st.ClientFiles {
			fmt.Fprintf(&b, "  %s\n", f)
		}
	}
	if st.AdminToken != "" {
		fmt.Fprintf(&b, "\nadmin API (/hubsim/…, /metrics)\n")
		fmt.Fprintf(&b, "  Authorization:     Bearer %s\n", st.AdminToken)
	}
	fmt.Fprintf(&b, "\nHost names must resolve to hubsim's listen address (e.g. /etc/hosts).\n")
	_, err := io.WriteString(w, b.String())
	return err
}
