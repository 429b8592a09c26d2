package server

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/porthole-iot/porthole/hubsim/internal/pki"
	"github.com/porthole-iot/porthole/hubsim/internal/simconfig"
)

// Prepared is a hubsim whose configuration is validated, keys filled, CA
// and server certificate loaded and listeners bound — everything before
// the components are built and Start is called.
type Prepared struct {
	Config *simconfig.Config
	PKI    *pki.PKI
	Server *Server
	// AdminToken is this run's credential for the admin API (/hubsim/…,
	// /metrics), fresh on every start; the status file (0600) carries it.
	AdminToken string
}

// Prepare applies derived defaults to cfg (ApplyDefaults), validates it,
// fills its keys (EnsureKeys), loads or creates the CA in
// cfg.CADirectory() and binds the listeners. The caller builds the
// components (they can read p.Server's ports), calls p.Server.Start and
// later p.Server.Close.
func Prepare(cfg *simconfig.Config, logger *slog.Logger) (*Prepared, error) {
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// The status file and banner name the CA file for clients that run in
	// other directories: keep every path absolute.
	for _, dir := range []*string{&cfg.StateDir, &cfg.CADir} {
		if *dir == "" {
			continue
		}
		abs, err := filepath.Abs(*dir)
		if err != nil {
			return nil, fmt.Errorf("hubsim: %w", err)
		}
		*dir = abs
	}
	if err := cfg.EnsureKeys(nil); err != nil {
		return nil, err
	}
	ca, err := pki.Load(pki.Options{Dir: cfg.CADirectory(), Names: cfg.CertNames()})
	if err != nil {
		return nil, err
	}
	if logger != nil {
		logger.Info("hubsim certificates", "ca", ca.CAFile(), "ca_created", ca.CACreated(),
			"server_cert_issued", ca.ServerIssued(), "names", ca.Names())
	}
	srv, err := New(Config{
		Listen:      cfg.Listen,
		HTTPSPort:   cfg.Ports.HTTPS,
		MQTTPort:    cfg.Ports.MQTT,
		Certificate: ca.ServerCertificate(),
		Logger:      logger,
		Limits: Limits{
			MaxConns:          cfg.Limits.MaxConnections,
			MaxConnsPerAddr:   cfg.Limits.MaxConnectionsPerAddress,
			ReadHeaderTimeout: cfg.Limits.ReadHeaderTimeout,
			BodyTimeout:       cfg.Limits.BodyTimeout,
			IdleTimeout:       cfg.Limits.IdleTimeout,
			MaxBodyBytes:      cfg.Limits.MaxBodyBytes,
		},
	})
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("%w (ports below 1024 need privileges; port 0 picks a free one)", err)
		}
		return nil, err
	}
	token, err := newAdminToken()
	if err != nil {
		_ = srv.Close()
		return nil, err
	}
	return &Prepared{Config: cfg, PKI: ca, Server: srv, AdminToken: token}, nil
}

// Status is the status of the prepared sim (ports as bound).
func (p *Prepared) Status() Status {
	st := NewStatus(p.Config, p.PKI.CAFile(), p.Server.HTTPSPort(), p.Server.MQTTPort())
	st.AdminToken = p.AdminToken
	return st
}

// newAdminToken returns 256 random bits, URL-safe base64.
func newAdminToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("hubsim: admin token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
