package iothub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/porthole-iot/porthole/sdk/auth"
	"github.com/porthole-iot/porthole/sdk/internal/topic"
	"github.com/porthole-iot/porthole/sdk/retry"
)

// Transports.
const (
	TransportMQTT   = "mqtt"    // MQTT over TLS, port 8883 (default)
	TransportMQTTWS = "mqtt-ws" // MQTT over a TLS WebSocket, port 443
)

// Config describes one device or module connection. HostName, DeviceID and
// one of SharedAccessKey and Certificate are required.
type Config struct {
	HostName string // hub host name, e.g. "myhub.azure-devices.net"
	DeviceID string
	ModuleID string // optional

	// SharedAccessKey is the base64 device (or module) key; tokens are
	// minted from it on every connect. Or:
	SharedAccessKey string
	// Certificate authenticates with X.509 (the MQTT password is empty).
	Certificate *tls.Certificate

	// Transport is TransportMQTT ("" too) or TransportMQTTWS.
	Transport string
	// Port overrides the transport's standard port (8883 or 443), e.g. for a
	// hubsim listening on an unprivileged port. 0 means standard.
	Port int
	// RootCAs are the CAs trusted for the hub and for device streams; nil
	// means the system roots.
	RootCAs *x509.CertPool
	// ProxyURL is an HTTP proxy ("http://[user:pass@]host:port") reached with
	// CONNECT, for MQTT, MQTT over WebSocket and device-stream WebSockets
	// alike. nil connects directly.
	ProxyURL *url.URL
	// DialContext opens TCP connections (to the hub, the streaming endpoint
	// or the proxy); nil uses a net.Dialer. Tests map host names here.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// Keepalive is the MQTT keep-alive; 0 means DefaultKeepalive. A link that
	// does not answer a ping within min(DefaultPingTimeout, Keepalive/2)
	// is declared dead and the client reconnects.
	Keepalive time.Duration
	// TokenTTL is the lifetime of the SAS tokens the client mints; 0 means
	// DefaultTokenTTL. The client reconnects with a fresh token after 80% of
	// it.
	TokenTTL time.Duration
	// ConnectTimeout bounds one connection attempt; 0 means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// ProductInfo is sent as DeviceClientType in the CONNECT user name;
	// "" means "porthole/<module version>".
	ProductInfo string

	// Retry is the reconnect policy after the connection drops (see
	// Client's documentation); the zero value is sdk/retry's Azure
	// recommended policy. Its Clock defaults to Clock.
	Retry retry.Policy

	Logger *slog.Logger // nil discards
	// Now is the wall clock used to sign tokens; nil means Clock.Now, or
	// time.Now when Clock is nil too.
	Now func() time.Time
	// Clock runs the client's timers (token renewal, reconnect backoff); nil
	// means the real clock. Tests inject retrytest.Clock.
	Clock retry.Clock
}

// settings is a validated Config with defaults applied.
type settings struct {
	Config
	port        int
	pingTimeout time.Duration
	signer      *auth.KeySigner // nil with X.509
	username    string
	clientID    string
	log         *slog.Logger
}

func (cfg Config) settings() (*settings, error) {
	s := &settings{Config: cfg}
	var problems []string
	if cfg.HostName == "" {
		problems = append(problems, "HostName is empty")
	}
	if err := topic.ValidateID(cfg.DeviceID); err != nil {
		problems = append(problems, "DeviceID: "+err.Error())
	}
	if cfg.ModuleID != "" {
		if err := topic.ValidateID(cfg.ModuleID); err != nil {
			problems = append(problems, "ModuleID: "+err.Error())
		}
	}
	switch {
	case cfg.SharedAccessKey != "" && cfg.Certificate != nil:
		problems = append(problems, "both SharedAccessKey and Certificate are set")
	case cfg.SharedAccessKey == "" && cfg.Certificate == nil:
		problems = append(problems, "neither SharedAccessKey nor Certificate is set")
	case cfg.SharedAccessKey != "":
		if err := auth.ValidateKey(cfg.SharedAccessKey); err != nil {
			problems = append(problems, "SharedAccessKey: "+err.Error())
		}
	}
	switch cfg.Transport {
	case "", TransportMQTT:
		s.Transport = TransportMQTT
		s.port = PortMQTT
	case TransportMQTTWS:
		s.port = PortWebSocket
	default:
		problems = append(problems, fmt.Sprintf("unknown Transport %q", cfg.Transport))
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		problems = append(problems, fmt.Sprintf("Port %d out of range", cfg.Port))
	} else if cfg.Port != 0 {
		s.port = cfg.Port
	}
	if cfg.ProxyURL != nil && cfg.ProxyURL.Scheme != "http" {
		problems = append(problems, fmt.Sprintf("ProxyURL scheme %q: only http proxies are supported", cfg.ProxyURL.Scheme))
	}
	if cfg.Keepalive < 0 || cfg.TokenTTL < 0 || cfg.ConnectTimeout < 0 {
		problems = append(problems, "negative duration")
	}
	if cfg.Keepalive > 0 && cfg.Keepalive < time.Second {
		problems = append(problems, "Keepalive below one second")
	}
	if cfg.TokenTTL > 0 && cfg.TokenTTL < 2*time.Second {
		problems = append(problems, "TokenTTL below two seconds")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(problems, "; "))
	}

	if s.Keepalive == 0 {
		s.Keepalive = DefaultKeepalive
	}
	s.Keepalive = s.Keepalive.Truncate(time.Second)
	s.pingTimeout = min(DefaultPingTimeout, s.Keepalive/2)
	if s.TokenTTL == 0 {
		s.TokenTTL = DefaultTokenTTL
	}
	if s.ConnectTimeout == 0 {
		s.ConnectTimeout = DefaultConnectTimeout
	}
	if s.Clock == nil {
		s.Clock = retry.RealClock()
	}
	if s.Now == nil {
		s.Now = s.Clock.Now
	}
	if s.Retry.Clock == nil {
		s.Retry.Clock = s.Clock
	}
	if s.ProductInfo == "" {
		s.ProductInfo = "porthole/" + moduleVersion()
	}
	s.log = cfg.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("device", clientLabel(cfg.DeviceID, cfg.ModuleID))
	if cfg.SharedAccessKey != "" {
		signer, err := auth.NewDeviceSigner(cfg.HostName, cfg.DeviceID, cfg.ModuleID, cfg.SharedAccessKey, s.Now)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		s.signer = signer
	}
	s.clientID = topic.ClientID(cfg.DeviceID, cfg.ModuleID)
	s.username = topic.HubUser{
		Host:       cfg.HostName,
		DeviceID:   cfg.DeviceID,
		ModuleID:   cfg.ModuleID,
		ClientType: s.ProductInfo,
	}.Username()
	return s, nil
}

func clientLabel(deviceID, moduleID string) string {
	if moduleID == "" {
		return deviceID
	}
	return deviceID + "/" + moduleID
}

// tlsConfig is the client TLS configuration for the hub (ServerName =
// HostName) or, with serverName "", for a stream URL's host.
func (s *settings) tlsConfig(serverName string) *tls.Config {
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    s.RootCAs,
		ServerName: serverName,
	}
	if s.Certificate != nil {
		c.Certificates = []tls.Certificate{*s.Certificate}
	}
	return c
}

const modulePath = "github.com/porthole-iot/porthole"

// moduleVersion is this module's version from the build information, or
// "dev" for a development build.
func moduleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if bi.Main.Path == modulePath && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == modulePath && d.Version != "" {
			return d.Version
		}
	}
	return "dev"
}
