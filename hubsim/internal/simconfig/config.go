package simconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/porthole-iot/porthole/hubsim/internal/pki"

	"github.com/porthole-iot/porthole/hubsim/internal/redact"
)

// Default values.
const (
	DefaultListen         = "127.0.0.1"
	DefaultHTTPSPort      = 443  // every HTTPS and WSS path, hub and DPS (PROTOCOL.md §14)
	DefaultMQTTPort       = 8883 // MQTT over TLS (PROTOCOL.md §14)
	DefaultStateDir       = "hubsim-state"
	DefaultIDScope        = "0ne00000001"
	DefaultGlobalEndpoint = "global.dps.local"
	DefaultDPSHostName    = "dps.local"
	// DefaultHandshakeTimeout: the documented device-streams handshake limit
	// [MicrosoftDocs/azure-docs articles/iot-hub/iot-hub-device-streams-overview.md].
	DefaultHandshakeTimeout = 60 * time.Second
	// Stream quotas: carried over, not verified in a source (PROTOCOL.md §11, §13).
	DefaultNewStreamsPerSecond = 5
	DefaultConcurrentPerHub    = 50
	// HTTPS limits (hubsim's own protection, not Azure figures). A stream
	// holds two HTTPS connections and labs run everything from one loopback
	// address, so the per-address cap leaves room for about a thousand
	// streams.
	DefaultMaxConnections           = 8192
	DefaultMaxConnectionsPerAddress = 2048
	DefaultReadHeaderTimeout        = 10 * time.Second
	DefaultBodyTimeout              = 30 * time.Second
	DefaultIdleTimeout              = 2 * time.Minute
	DefaultMaxBodyBytes             = 1 << 20
	// DefaultDeviceConnectionsPerSecond is IoT Hub's device-connections
	// throttle for S1 ("higher of 100/sec or 12/sec/unit")
	// [MicrosoftDocs/azure-docs articles/iot-hub/iot-hub-devguide-quotas-throttling.md].
	DefaultDeviceConnectionsPerSecond = 100
)

// Shared access policy names and rights as Azure names them.
// Hub: [MicrosoftDocs/azure-docs articles/iot-hub/iot-hub-dev-guide-sas.md];
// DPS: [MicrosoftDocs/azure-docs articles/iot-dps/how-to-control-access.md].
const (
	PolicyIoTHubOwner = "iothubowner"
	PolicyDPSOwner    = "provisioningserviceowner"

	RightRegistryRead   = "RegistryRead"
	RightRegistryWrite  = "RegistryWrite"
	RightServiceConnect = "ServiceConnect"
	RightDeviceConnect  = "DeviceConnect"

	RightServiceConfig           = "ServiceConfig"
	RightEnrollmentRead          = "EnrollmentRead"
	RightEnrollmentWrite         = "EnrollmentWrite"
	RightRegistrationStatusRead  = "RegistrationStatusRead"
	RightRegistrationStatusWrite = "RegistrationStatusWrite"
)

var (
	hubRights = []string{RightRegistryRead, RightRegistryWrite, RightServiceConnect, RightDeviceConnect}
	dpsRights = []string{RightServiceConfig, RightEnrollmentRead, RightEnrollmentWrite,
		RightDeviceConnect, RightRegistrationStatusRead, RightRegistrationStatusWrite}
)

// DefaultHubPolicies are the policies a new IoT hub has in Azure.
func DefaultHubPolicies() []Policy {
	return []Policy{
		{Name: PolicyIoTHubOwner, Rights: []string{RightRegistryRead, RightRegistryWrite, RightServiceConnect, RightDeviceConnect}},
		{Name: "service", Rights: []string{RightServiceConnect}},
		{Name: "device", Rights: []string{RightDeviceConnect}},
		{Name: "registryRead", Rights: []string{RightRegistryRead}},
		{Name: "registryReadWrite", Rights: []string{RightRegistryRead, RightRegistryWrite}},
	}
}

// DefaultDPSPolicies are the policies a new DPS instance has in Azure.
func DefaultDPSPolicies() []Policy {
	return []Policy{{Name: PolicyDPSOwner, Rights: append([]string(nil), dpsRights...)}}
}

// Config is hubsim's whole configuration.
type Config struct {
	// Listen are the IP addresses to listen on; every address gets both ports.
	Listen []string `yaml:"listen"`
	Ports  Ports    `yaml:"ports"`
	// StateDir holds keys.json and, unless CADir is set, the CA. Relative
	// paths are relative to the working directory.
	StateDir string `yaml:"state_dir"`
	// CADir holds the CA and server certificate; empty means <state_dir>/ca.
	CADir string `yaml:"ca_dir"`
	DPS   DPS    `yaml:"dps"`
	Hubs  []Hub  `yaml:"hubs"`
	// ExtraNames are more host names or IPs for the server certificate.
	ExtraNames []string `yaml:"extra_names"`
	Log        Log      `yaml:"log"`
	Streams    Streams  `yaml:"streams"`
	Storage    Storage  `yaml:"storage"`
	Limits     Limits   `yaml:"limits"`

	source string         // file name for messages; "" when not from a file
	lines  map[string]int // field path ("hubs[1].hostname") → line in source
}

// Ports are the TCP ports. 0 picks a free port; with several listen
// addresses, all use the port picked for the first.
type Ports struct {
	HTTPS int `yaml:"https"`
	MQTT  int `yaml:"mqtt"`
}

// DPS configures the Device Provisioning Service.
type DPS struct {
	IDScope string `yaml:"id_scope"`
	// GlobalEndpoint is the host name devices register with.
	GlobalEndpoint string `yaml:"global_endpoint"`
	// HostName is the service host name (enrollments, service connection string).
	HostName string   `yaml:"hostname"`
	Policies []Policy `yaml:"policies"`
}

// Hub configures one IoT hub.
type Hub struct {
	// Name is a short label; empty means the first label of HostName.
	Name     string   `yaml:"name"`
	HostName string   `yaml:"hostname"`
	Policies []Policy `yaml:"policies"`
}

// Policy is a shared access policy. Empty keys are generated on first start
// and kept in <state_dir>/keys.json.
type Policy struct {
	Name         string   `yaml:"name"`
	Rights       []string `yaml:"rights"`
	PrimaryKey   string   `yaml:"primary_key"`
	SecondaryKey string   `yaml:"secondary_key"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text, json
}

// Streams configures the device-streams endpoint.
type Streams struct {
	// HostName of the streaming endpoint; empty means each hub's own host name.
	HostName         string        `yaml:"hostname"`
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// NewPerSecond limits new streams per hub per second (0 = unlimited).
	NewPerSecond int `yaml:"new_per_second"`
	// ConcurrentPerHub limits open streams per hub (0 = unlimited).
	ConcurrentPerHub int `yaml:"concurrent_per_hub"`
}

// Storage modes.
const (
	// StorageSQLite keeps registries, twins, C2D queues and DPS records in
	// <state_dir>/hubsim.db, so they survive restarts (the default).
	StorageSQLite = "sqlite"
	// StorageMemory keeps them in an in-memory database: gone on exit.
	StorageMemory = "memory"
)

// Storage configures where hubsim keeps its state.
type Storage struct {
	// Mode is StorageSQLite (default) or StorageMemory.
	Mode string `yaml:"mode"`
	// Durable fsyncs every acknowledged write (SQLite synchronous=FULL), so
	// writes survive power loss, not only a killed process.
	Durable bool `yaml:"durable"`
}

// Limits bound what HTTPS clients can hold: connections in total and per
// remote IP (over-cap connections are closed on accept), and how long
// headers, bodies and idle keep-alive connections may take. WebSocket
// upgrades (streams, MQTT over WebSocket) are not subject to them once
// upgraded.
type Limits struct {
	MaxConnections           int           `yaml:"max_connections"`
	MaxConnectionsPerAddress int           `yaml:"max_connections_per_address"`
	ReadHeaderTimeout        time.Duration `yaml:"read_header_timeout"`
	BodyTimeout              time.Duration `yaml:"body_timeout"`
	IdleTimeout              time.Duration `yaml:"idle_timeout"`
	MaxBodyBytes             int64         `yaml:"max_body_bytes"`
	// DeviceConnectionsPerSecond throttles new MQTT device connections per
	// hub, as IoT Hub does; 0 means unlimited.
	DeviceConnectionsPerSecond float64 `yaml:"device_connections_per_second"`
}

// Default returns the configuration used when there is no file.
func Default() *Config {
	c := &Config{
		Listen:   []string{DefaultListen},
		Ports:    Ports{HTTPS: DefaultHTTPSPort, MQTT: DefaultMQTTPort},
		StateDir: DefaultStateDir,
		DPS: DPS{
			IDScope:        DefaultIDScope,
			GlobalEndpoint: DefaultGlobalEndpoint,
			HostName:       DefaultDPSHostName,
		},
		Hubs: []Hub{
			{Name: "hub-eu", HostName: "hub-eu.local"},
			{Name: "hub-us", HostName: "hub-us.local"},
		},
		Log: Log{Level: "info", Format: "text"},
		Streams: Streams{
			HandshakeTimeout: DefaultHandshakeTimeout,
			NewPerSecond:     DefaultNewStreamsPerSecond,
			ConcurrentPerHub: DefaultConcurrentPerHub,
		},
		Storage: Storage{Mode: StorageSQLite},
		Limits: Limits{
			MaxConnections:             DefaultMaxConnections,
			MaxConnectionsPerAddress:   DefaultMaxConnectionsPerAddress,
			ReadHeaderTimeout:          DefaultReadHeaderTimeout,
			BodyTimeout:                DefaultBodyTimeout,
			IdleTimeout:                DefaultIdleTimeout,
			MaxBodyBytes:               DefaultMaxBodyBytes,
			DeviceConnectionsPerSecond: DefaultDeviceConnectionsPerSecond,
		},
	}
	c.fill()
	return c
}

// Load reads and decodes a YAML file over the defaults. It does not call
// Validate, so flag overrides can be applied first.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("simconfig: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes YAML over the defaults; name is used in messages. Unknown
// fields are errors.
func Parse(name string, data []byte) (*Config, error) {
	c := Default()
	c.source = name
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil {
		// Unknown keys and wrong kinds of value, all at once and in the
		// config's words (file:line: field: …); the decoder's own
		// messages name Go types.
		if errs := checkNode(name, &root, reflect.TypeFor[Config](), ""); len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		c.lines = map[string]int{}
		indexLines(&root, "", c.lines)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, decodeError(name, err)
	}
	c.fill()
	return c, nil
}

// ApplyDefaults fills what is derived when left empty: a hub's name (first
// label of its host name) and default policies for hubs and DPS without
// any. Load and Default call it; call it again after adding hubs in code.
func (c *Config) ApplyDefaults() { c.fill() }

// fill applies defaults that depend on other fields.
func (c *Config) fill() {
	if c.DPS.Policies == nil {
		c.DPS.Policies = DefaultDPSPolicies()
	}
	for i := range c.Hubs {
		h := &c.Hubs[i]
		if h.Name == "" {
			h.Name, _, _ = strings.Cut(h.HostName, ".")
		}
		if h.Policies == nil {
			h.Policies = DefaultHubPolicies()
		}
	}
}

// CADirectory is CADir, or <state_dir>/ca when CADir is empty.
func (c *Config) CADirectory() string {
	if c.CADir != "" {
		return c.CADir
	}
	return c.StateDir + string(os.PathSeparator) + "ca"
}

// CertNames lists every name the server certificate must cover (besides
// loopback): hub, DPS and streaming host names, extra names and the
// specific listen addresses.
func (c *Config) CertNames() []string {
	out := c.HostNames()
	for _, l := range c.Listen {
		if ip := net.ParseIP(l); ip != nil && !ip.IsUnspecified() {
			out = append(out, l)
		}
	}
	return out
}

// HostNames lists the host names hubsim answers for (hubs, DPS, streaming
// endpoint, extra names), without loopback.
func (c *Config) HostNames() []string {
	var out []string
	for _, h := range c.Hubs {
		out = append(out, h.HostName)
	}
	out = append(out, c.DPS.GlobalEndpoint, c.DPS.HostName)
	if c.Streams.HostName != "" {
		out = append(out, c.Streams.HostName)
	}
	return append(out, c.ExtraNames...)
}

// Hub returns the hub with this host name (case-insensitive).
func (c *Config) Hub(hostName string) (*Hub, bool) {
	for i := range c.Hubs {
		if strings.EqualFold(c.Hubs[i].HostName, hostName) {
			return &c.Hubs[i], true
		}
	}
	return nil, false
}

// Policy returns the named policy.
func findPolicy(ps []Policy, name string) (Policy, bool) {
	for _, p := range ps {
		if p.Name == name {
			return p, true
		}
	}
	return Policy{}, false
}

// Policy returns the hub's policy called name.
func (h Hub) Policy(name string) (Policy, bool) { return findPolicy(h.Policies, name) }

// Policy returns the DPS policy called name.
func (d DPS) Policy(name string) (Policy, bool) { return findPolicy(d.Policies, name) }

// ConnectionString is the service connection string for policy (primary
// key), as Azure shows it. It contains a secret: print it, never log it.
func (h Hub) ConnectionString(policy string) (string, bool) {
	p, ok := h.Policy(policy)
	if !ok || p.PrimaryKey == "" {
		return "", false
	}
	return connectionString(h.HostName, p), true
}

// ConnectionString is the DPS service connection string for policy
// (primary key). It contains a secret: print it, never log it.
func (d DPS) ConnectionString(policy string) (string, bool) {
	p, ok := d.Policy(policy)
	if !ok || p.PrimaryKey == "" {
		return "", false
	}
	return connectionString(d.HostName, p), true
}

// connectionString formats Azure's service connection string
// [Azure/azure-iot-sdk-node common/core/src/connection_string.ts].
func connectionString(host string, p Policy) string {
	return "HostName=" + host + ";SharedAccessKeyName=" + p.Name + ";SharedAccessKey=" + p.PrimaryKey
}

// Logger builds the logger the config asks for, writing to w.
func (c *Config) Logger(w io.Writer) (*slog.Logger, error) {
	level, err := parseLevel(c.Log.Level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.Log.Format {
	case "", "text":
		return slog.New(redact.Handler(slog.NewTextHandler(w, opts))), nil
	case "json":
		return slog.New(redact.Handler(slog.NewJSONHandler(w, opts))), nil
	default:
		return nil, fmt.Errorf("simconfig: log format %q: want text or json", c.Log.Format)
	}
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if s == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("simconfig: log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// decodeError rewrites yaml's "line N: msg" errors as "file:N: msg".
func decodeError(name string, err error) error {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	errs := make([]error, 0, len(msgs))
	for _, m := range msgs {
		m = strings.TrimSpace(m)
		if g := yamlLine.FindStringSubmatch(m); g != nil {
			errs = append(errs, fmt.Errorf("%s:%s: %s", name, g[1], g[2]))
		} else {
			errs = append(errs, fmt.Errorf("%s: %s", name, strings.TrimPrefix(m, "yaml: ")))
		}
	}
	return errors.Join(errs...)
}

// indexLines records the line of every mapping value and sequence item
// under path.
func indexLines(n *yaml.Node, path string, out map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			indexLines(c, path, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			out[p] = k.Line
			indexLines(v, p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			out[p] = c.Line
			indexLines(c, p, out)
		}
	}
}

// pos formats the location of field path for an error message.
func (c *Config) pos(path string) string {
	// Walk up to the nearest recorded ancestor: "hubs[1].name" may be
	// missing from the file while "hubs[1]" is there.
	for p := path; p != ""; {
		if line, ok := c.lines[p]; ok {
			return fmt.Sprintf("%s:%d: %s", c.source, line, path)
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	if c.source != "" {
		return c.source + ": " + path
	}
	return path
}

// validName applies pki's name rules, so Validate catches what the
// certificate would refuse.
func validName(n string) error {
	_, err := pki.CanonicalNames([]string{n})
	return err
}
