package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/porthole-iot/porthole/sdk/service"
)

// Environment variables.
const (
	envConnectionString    = "PORTHOLE_CONNECTION_STRING"
	envDPSConnectionString = "PORTHOLE_DPS_CONNECTION_STRING"
	envConfig              = "PORTHOLE_CONFIG"
)

// fileConfig is the config file.
type fileConfig struct {
	ConnectionString    string   `yaml:"connection_string"`
	DPSConnectionString string   `yaml:"dps_connection_string"`
	CAFile              string   `yaml:"ca_file"`
	Resolve             []string `yaml:"resolve"`
}

// settings are the effective connection settings of one command.
type settings struct {
	connectionString    string
	connectionFromFlag  bool // the hub connection string came from --connection-string
	dpsConnectionString string
	caFile              string
	resolve             map[string]string // "host:port" (host lower-case) → "ip:port"
	resolveArgs         []string          // as given, for passing on
	configPath          string            // explicit config path (flag or env), "" for the default
	verbose             bool
	log                 *slog.Logger
}

// loadSettings merges flags over the environment over the config file.
func loadSettings(e *env, f *connFlags, stderr io.Writer) (*settings, error) {
	s := &settings{verbose: f.verbose, log: newLogger(stderr, f.verbose)}
	path := f.configPath
	if path == "" {
		path = e.getenv(envConfig)
	}
	s.configPath = path
	explicit := path != ""
	if !explicit {
		dir, err := e.userConfigDir()
		if err == nil {
			path = filepath.Join(dir, "porthole", "config.yaml")
		}
	}
	var fc fileConfig
	if path != "" {
		var err error
		fc, err = readConfig(path, explicit, stderr)
		if err != nil {
			return nil, err
		}
	}

	switch {
	case f.connectionString != "":
		s.connectionString, s.connectionFromFlag = f.connectionString, true
	case e.getenv(envConnectionString) != "":
		s.connectionString = e.getenv(envConnectionString)
	default:
		s.connectionString = fc.ConnectionString
	}
	s.dpsConnectionString = first(f.dpsConnectionString, e.getenv(envDPSConnectionString), fc.DPSConnectionString)
	s.caFile = first(f.caFile, fc.CAFile)
	s.resolveArgs = fc.Resolve
	if len(f.resolve) > 0 {
		s.resolveArgs = f.resolve
	}
	m, err := parseResolve(s.resolveArgs)
	if err != nil {
		return nil, err
	}
	s.resolve = m
	return s, nil
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// readConfig decodes the config file strictly. A missing default file is
// fine; a missing explicit one is not.
func readConfig(path string, explicit bool, stderr io.Writer) (fileConfig, error) {
	var fc fileConfig
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return fc, nil
	}
	if err != nil {
		return fc, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		// yaml errors quote lines, not values of other keys; keep the path.
		return fc, fmt.Errorf("config %s: %w", path, err)
	}
	if fc.ConnectionString != "" || fc.DPSConnectionString != "" {
		if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
			fmt.Fprintf(stderr, "porthole: warning: %s holds connection strings but is readable by others (mode %v); chmod 600 it\n", path, st.Mode().Perm())
		}
	}
	return fc, nil
}

// parseResolve reads "host:port=ip:port" entries.
func parseResolve(args []string) (map[string]string, error) {
	m := map[string]string{}
	for _, a := range args {
		from, to, ok := strings.Cut(a, "=")
		if !ok {
			return nil, usagef("--resolve %q: want host:port=ip:port", a)
		}
		fh, fp, err1 := net.SplitHostPort(from)
		th, tp, err2 := net.SplitHostPort(to)
		if err1 != nil || err2 != nil || fh == "" || fp == "" || th == "" || tp == "" {
			return nil, usagef("--resolve %q: want host:port=ip:port", a)
		}
		m[net.JoinHostPort(strings.ToLower(fh), fp)] = to
	}
	return m, nil
}

// dialer returns a DialContext that applies the --resolve map.
func (s *settings) dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if h, p, err := net.SplitHostPort(addr); err == nil {
			if to, ok := s.resolve[net.JoinHostPort(strings.ToLower(h), p)]; ok {
				addr = to
			}
		}
		return d.DialContext(ctx, network, addr)
	}
}

// serviceConfig builds the sdk/service configuration for a connection
// string.
func (s *settings) serviceConfig(connectionString string) (service.Config, error) {
	cfg := service.Config{
		ConnectionString: connectionString,
		DialContext:      s.dialer(),
		Logger:           s.log,
	}
	if s.caFile != "" {
		pem, err := os.ReadFile(s.caFile)
		if err != nil {
			return cfg, fmt.Errorf("--ca: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return cfg, fmt.Errorf("--ca %s: no PEM certificate in it", s.caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// hubClient returns a client for the hub connection string.
func (s *settings) hubClient() (*service.Client, error) {
	if s.connectionString == "" {
		return nil, usagef("no hub connection string: use --connection-string, $%s or connection_string in the config file", envConnectionString)
	}
	cfg, err := s.serviceConfig(s.connectionString)
	if err != nil {
		return nil, err
	}
	return service.New(cfg)
}

// dpsClient returns a client for the DPS connection string.
func (s *settings) dpsClient() (*service.DPSClient, error) {
	if s.dpsConnectionString == "" {
		return nil, usagef("no DPS connection string: use --dps-connection-string, $%s or dps_connection_string in the config file", envDPSConnectionString)
	}
	cfg, err := s.serviceConfig(s.dpsConnectionString)
	if err != nil {
		return nil, err
	}
	return service.NewDPS(cfg)
}
