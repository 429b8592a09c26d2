package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/url"
	"time"
)

// DefaultPath is where the agent looks for its config when not told otherwise.
const DefaultPath = "/etc/porthole/agent.yaml"

// Defaults. Each is also written, with a comment, in configs/agent.full.yaml.
const (
	// DefaultGlobalEndpoint is the DPS device endpoint shared by all DPS
	// instances; the ID scope selects the instance.
	// Source: Azure/azure-iot-sdk-c provisioning_client/samples/prov_dev_client_sample/prov_dev_client_sample.c
	// (global_prov_uri) and MicrosoftDocs/azure-docs articles/iot-dps/concepts-service.md
	// ("Device provisioning endpoint").
	DefaultGlobalEndpoint = "global.azure-devices-provisioning.net"

	// DefaultKeepalive is the MQTT keep-alive sent to the hub.
	// Source: Azure/azure-sdk-for-c sdk/inc/azure/core/az_mqtt5_config.h
	// (AZ_MQTT5_DEFAULT_MQTT_CONNECT_KEEPALIVE_SECONDS = 240).
	DefaultKeepalive = 240 * time.Second

	// MaxKeepalive is the largest keep-alive IoT Hub honours: the hub times a
	// client out after 1.5 × keep-alive but never waits longer than 1767 s.
	// Source: [doc: Communicate with an IoT hub using the MQTT protocol]
	// (MicrosoftDocs/azure-docs, "1767 / 1.5 = 1177 seconds").
	MaxKeepalive = 1177 * time.Second
	// DefaultTokenTTL is the lifetime of the SAS tokens the agent signs for
	// the hub connection (the official SDKs use one hour); the agent
	// reconnects with a fresh token before it runs out.
	DefaultTokenTTL = time.Hour
	// MinTokenTTL and MaxTokenTTL bound hub.token_ttl: a shorter token means
	// a reconnect (and a hub connect operation) that often, a longer one a
	// longer window for a stolen token.
	MinTokenTTL = time.Minute
	MaxTokenTTL = 24 * time.Hour
	// MinKeepalive keeps a typo like "5ms" from flooding the hub with pings.
	MinKeepalive = 5 * time.Second

	// DefaultRetryCachedHubFor follows the DPS guidance to keep retrying the
	// cached hub for 15–30 minutes before registering again.
	// Source: MicrosoftDocs/azure-docs articles/iot-dps/concepts-deploy-at-scale.md.
	DefaultRetryCachedHubFor = 15 * time.Minute

	DefaultReprovisionMethod = "reprovision"
	DefaultStateDir          = "/var/lib/porthole"
	DefaultMaxConcurrent     = 8
	DefaultIdleTimeout       = 30 * time.Minute
	DefaultHandshakeTimeout  = 60 * time.Second
	DefaultLogMaxSize        = 1 << 20
	DefaultLogMaxFiles       = 3

	// MaxStreamsLimit caps streams.max_concurrent.
	MaxStreamsLimit = 1024
	// MinLogMaxSize is the smallest log.max_size accepted.
	MinLogMaxSize = 4 << 10
	// MaxLogFiles caps log.max_files.
	MaxLogFiles = 100
)

// DefaultTargets is used when the streams section (or its targets key) is absent.
func DefaultTargets() map[string]string { return map[string]string{"ssh": "127.0.0.1:22"} }

// Transport names a wire protocol.
type Transport string

const (
	TransportHTTPS  Transport = "https"   // DPS only
	TransportMQTT   Transport = "mqtt"    // MQTT over TLS, port 8883
	TransportMQTTWS Transport = "mqtt-ws" // MQTT over WebSocket over TLS, port 443
)

// AttestationType says how the device proves its identity to DPS.
type AttestationType string

const (
	AttestSymmetricKey AttestationType = "symmetric_key"
	AttestX509         AttestationType = "x509"
)

// LogFormat, LogDestination and LogLevel are the log section's enums.
type (
	LogFormat      string
	LogDestination string
	LogLevel       string
)

const (
	LogText LogFormat = "text"
	LogJSON LogFormat = "json"

	LogStderr LogDestination = "stderr"
	LogSyslog LogDestination = "syslog"
	LogFile   LogDestination = "file"

	LevelDebug LogLevel = "debug"
	LevelInfo  LogLevel = "info"
	LevelWarn  LogLevel = "warn"
	LevelError LogLevel = "error"
)

// Slog converts the level; unknown levels (rejected by Validate) map to info.
func (l LogLevel) Slog() slog.Level {
	switch l {
	case LevelDebug:
		return slog.LevelDebug
	case LevelWarn:
		return slog.LevelWarn
	case LevelError:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Config is the agent's whole configuration. Build one with Load, Parse or
// Default (then Validate and LoadSecrets).
type Config struct {
	// File is the name the config was loaded from ("" for Default).
	File string

	Provisioning Provisioning
	Hub          Hub
	Proxy        Proxy
	Streams      Streams
	Log          Log
	Health       Health
	Metrics      Metrics

	// StateDir holds state.json (cached assignment).
	StateDir string
	// CAFile is an extra trust anchor in PEM (e.g. hubsim's CA); "" = system roots only.
	CAFile string
	// Resolve overrides DNS for host:port pairs, like curl --resolve.
	Resolve []Resolve

	// RootCAs is set by LoadSecrets: the system roots plus CAFile's
	// certificates, or nil (meaning system roots) when CAFile is empty.
	RootCAs *x509.CertPool

	// lines maps a dotted field to the line of its value (or of its key for
	// sections), so Validate can point at the right place.
	lines map[string]int
	// dir resolves relative paths; the config file's directory.
	dir string
}

// Provisioning is the DPS part.
type Provisioning struct {
	// GlobalEndpoint is the DPS host, optionally with ":port".
	GlobalEndpoint string
	IDScope        string
	// RegistrationID is the device's DPS registration ID. For X.509 it may be
	// left empty and is then taken from the certificate's common name.
	RegistrationID string
	Transport      Transport
	Attestation    Attestation
	// Payload is sent as the registration "payload" (custom allocation
	// data), already encoded as a JSON object; nil when not configured.
	Payload json.RawMessage
}

// Attestation holds the device's DPS credential.
type Attestation struct {
	Type AttestationType

	SymmetricKey     Secret // inline device key (base64)
	SymmetricKeyFile string // or a file holding it
	GroupKey         Secret // inline enrollment-group key (base64)
	GroupKeyFile     string // or a file holding it

	CertFile string // X.509 client certificate chain (PEM)
	KeyFile  string // its private key (PEM)

	// DeviceKey is set by LoadSecrets for symmetric_key attestation: the
	// device key (base64) from whichever source is configured, derived
	// from the group key when one is used.
	DeviceKey Secret
	// Certificate is set by LoadSecrets for x509 attestation (Leaf filled).
	Certificate *tls.Certificate
}

// Hub is the IoT Hub connection part.
type Hub struct {
	Transport Transport
	Keepalive time.Duration
	// RetryCachedHubFor is how long the cached hub may keep failing with
	// retryable errors before the agent registers with DPS again.
	RetryCachedHubFor time.Duration
	// TokenTTL is the lifetime of the SAS tokens signed for the hub
	// connection (symmetric-key devices); the agent reconnects with a fresh
	// one after 80% of it.
	TokenTTL time.Duration
	// ReprovisionMethod is the direct method name that makes the agent
	// register again; "" disables it.
	ReprovisionMethod string
	// LookupFirst makes a boot with a cached assignment ask DPS where the
	// device belongs (a registration status lookup) before connecting,
	// instead of going straight to the cached hub. Off by default: the
	// lookup counts against the DPS quota on every boot.
	LookupFirst bool
}

// Proxy is an HTTP CONNECT proxy used for DPS, hub and streams alike.
type Proxy struct {
	// URL is nil when no proxy is configured. It may carry user:password.
	URL *url.URL
}

// Streams is the stream policy.
type Streams struct {
	// Targets maps a stream name to the local host:port it is bridged to.
	Targets          map[string]string
	MaxConcurrent    int
	IdleTimeout      time.Duration // 0 = none
	HandshakeTimeout time.Duration
	// Multiplexing, SOCKS, keepalive and audit (streams_mux.go).
	Mux        Mux
	SocksAllow []SocksRule // default deny: empty allows no SOCKS destination
	Keepalive  Keepalive
	Audit      Audit
}

// Log configures the agent's logging.
type Log struct {
	Level       LogLevel
	Format      LogFormat
	Destination LogDestination
	File        string // when Destination is file
	MaxSize     int64  // bytes before the file is rotated
	MaxFiles    int    // rotated files kept
}

// Resolve is one DNS override: connections to From (host:port) go to To (ip:port).
type Resolve struct {
	From string
	To   string

	raw  string // entry as written, for messages
	line int    // line of the entry in the file
}

// Default returns a config with every default filled in and no identity.
func Default() *Config {
	c := &Config{
		Provisioning: Provisioning{
			GlobalEndpoint: DefaultGlobalEndpoint,
			Transport:      TransportHTTPS,
			Attestation:    Attestation{Type: AttestSymmetricKey},
		},
		Hub: Hub{
			Transport:         TransportMQTT,
			Keepalive:         DefaultKeepalive,
			RetryCachedHubFor: DefaultRetryCachedHubFor,
			TokenTTL:          DefaultTokenTTL,
			ReprovisionMethod: DefaultReprovisionMethod,
		},
		Streams: Streams{
			Targets:          DefaultTargets(),
			MaxConcurrent:    DefaultMaxConcurrent,
			IdleTimeout:      DefaultIdleTimeout,
			HandshakeTimeout: DefaultHandshakeTimeout,
		},
		Log: Log{
			Level:       LevelInfo,
			Format:      LogText,
			Destination: LogStderr,
			MaxSize:     DefaultLogMaxSize,
			MaxFiles:    DefaultLogMaxFiles,
		},
		Health:   defaultHealth(),
		Metrics:  defaultMetrics(),
		StateDir: DefaultStateDir,
		lines:    map[string]int{},
	}
	defaultStreamsMux(&c.Streams)
	return c
}

// DialAddr applies the resolve overrides: it returns the address to dial
// for hostport (host:port), which is hostport itself when not overridden.
// Host names compare case-insensitively.
func (c *Config) DialAddr(hostport string) string {
	for _, r := range c.Resolve {
		if equalFoldHostPort(r.From, hostport) {
			return r.To
		}
	}
	return hostport
}
