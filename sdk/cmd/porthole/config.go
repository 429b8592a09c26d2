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
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/porthole-iot/porthole/sdk/auth"
	"github.com/porthole-iot/porthole/sdk/service"
)

// Environment variables.
const (
	envConnectionString    = "PORTHOLE_CONNECTION_STRING"
	envDPSConnectionString = "PORTHOLE_DPS_CONNECTION_STRING"
	envConfig              = "PORTHOLE_CONFIG"
	envProfile             = "PORTHOLE_PROFILE"
)

// Defaults.
const (
	defaultHostSuffix = ".porthole"
	defaultCacheTTL   = 10 * time.Minute
)

// fileConfig is the config file. The single connection_string (one hub)
// of earlier versions still works, alone or next to hubs.
type fileConfig struct {
	ConnectionString    string                `yaml:"connection_string"`
	DPSConnectionString string                `yaml:"dps_connection_string"`
	Hubs                map[string]credential `yaml:"hubs"`
	DPS                 credential            `yaml:"dps"`
	CAFile              string                `yaml:"ca_file"`
	Resolve             []string              `yaml:"resolve"`
	CacheTTL            string                `yaml:"cache_ttl"`
	SSH                 sshConfig             `yaml:"ssh"`

	path  string         // the file, for messages
	lines map[string]int // field path ("hubs.eu.connection_string") → line
}

// at names a field for a message: "file:line: field" (the line of its key
// when the file has it).
func (fc *fileConfig) at(field string) string {
	if line, ok := fc.lines[field]; ok {
		return fmt.Sprintf("%s:%d: %s", fc.path, line, field)
	}
	return fc.path + ": " + field
}

// quoted matches the quoted parts of a parse error, which may hold a
// piece of a key.
var quoted = regexp.MustCompile(`"[^"]*"`)

// checkConnectionString refuses a connection string from the config file
// that is not a service one, naming the field and never echoing it; what
// is "DPS" for the DPS's, anything else for a hub's.
func (fc *fileConfig) checkConnectionString(v, field, what string) error {
	if v == "" {
		return nil
	}
	if what != "DPS" {
		// The hub's message starts with what it is told: the place.
		if err := checkServiceString(v, fc.at(field)); err != nil {
			return err
		}
	} else if err := checkServiceString(v, what); err != nil {
		return fmt.Errorf("%s: %w", fc.at(field), err)
	}
	if _, err := auth.ParseServiceConnectionString(v); err != nil {
		return fmt.Errorf("%s: not a service connection string (%s); expected HostName=<host>;SharedAccessKeyName=<policy>;SharedAccessKey=<base64 key>",
			fc.at(field), quoted.ReplaceAllString(err.Error(), `"…"`))
	}
	return nil
}

// credential is a service connection string, given inline or as a file
// holding it (a path relative to the config file's directory, or ~/…).
type credential struct {
	ConnectionString     string `yaml:"connection_string"`
	ConnectionStringFile string `yaml:"connection_string_file"`
}

// sshConfig is the ssh section.
type sshConfig struct {
	// HostSuffix ends the host names of ssh-config's Host blocks
	// (default ".porthole"); stdio strips it.
	HostSuffix string `yaml:"host_suffix"`
	// User is the remote user written into the Host blocks.
	User string `yaml:"user"`
}

// hubCred is one configured hub.
type hubCred struct {
	name, host, connectionString string
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
	profile             string
	verbose             bool
	log                 *slog.Logger

	// hubs are the configured hubs (a connection string from the flag or
	// the environment is the only one then; explicitHub is set).
	hubs        []hubCred
	explicitHub bool
	hubFlag     string // --hub
	hostSuffix  string
	sshUser     string
	cacheTTL    time.Duration
}

// loadSettings merges flags over the environment over the config file.
func loadSettings(e *env, f *connFlags, stderr io.Writer) (*settings, error) {
	s := &settings{verbose: f.verbose, log: newLogger(stderr, f.verbose), hubFlag: f.hub}
	s.profile = first(f.profile, e.getenv(envProfile))
	if s.profile != "" && !validProfile(s.profile) {
		return nil, usagef("--profile %q: use letters, digits, '-', '_' and '.'", s.profile)
	}
	path := f.configPath
	if path == "" {
		path = e.getenv(envConfig)
	}
	explicit := path != ""
	if !explicit {
		dir, err := e.userConfigDir()
		if err == nil {
			path = filepath.Join(dir, "porthole", "config.yaml")
			if s.profile != "" {
				path = filepath.Join(dir, "porthole", "profiles", s.profile+".yaml")
				explicit = true // a profile that does not exist is a mistake
			}
		}
	}
	if f.configPath != "" || e.getenv(envConfig) != "" || s.profile != "" {
		s.configPath = path
	}
	var fc fileConfig
	if path != "" {
		var err error
		fc, err = readConfig(path, explicit, stderr)
		if err != nil {
			return nil, err
		}
	}
	dpsFile, err := fc.DPS.value(&fc, "dps", stderr)
	if err != nil {
		return nil, err
	}
	// Connection strings from the file are checked here, with their
	// place; flags and the environment are checked when used.
	dpsField := "dps.connection_string"
	if fc.DPS.ConnectionStringFile != "" {
		dpsField += "_file"
	}
	for _, c := range []struct{ v, field, what string }{
		{fc.ConnectionString, "connection_string", "hub"},
		{fc.DPSConnectionString, "dps_connection_string", "DPS"},
		{dpsFile, dpsField, "DPS"},
	} {
		if err := fc.checkConnectionString(c.v, c.field, c.what); err != nil {
			return nil, err
		}
	}
	for i, r := range fc.Resolve {
		if _, err := parseResolve([]string{r}); err != nil {
			return nil, fmt.Errorf("%s: %q is not host:port=ip:port; expected one like hub-eu.local:443=127.0.0.1:8443", fc.at(fmt.Sprintf("resolve[%d]", i)), r)
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
	if s.connectionString != "" && s.connectionString != fc.ConnectionString {
		s.explicitHub = true
		s.hubs = []hubCred{newHubCred("", s.connectionString)}
	} else if s.hubs, err = fc.hubList(stderr); err != nil {
		return nil, err
	}
	s.dpsConnectionString = first(f.dpsConnectionString, e.getenv(envDPSConnectionString), fc.DPSConnectionString, dpsFile)
	s.caFile = first(f.caFile, fc.CAFile)
	s.resolveArgs = fc.Resolve
	if len(f.resolve) > 0 {
		// --resolve adds to the config's list; a flag for the same
		// host:port wins (parseResolve keeps the last).
		s.resolveArgs = append(slices.Clone(fc.Resolve), f.resolve...)
	}
	m, err := parseResolve(s.resolveArgs)
	if err != nil {
		return nil, err
	}
	s.resolve = m
	s.hostSuffix = first(fc.SSH.HostSuffix, defaultHostSuffix)
	s.sshUser = fc.SSH.User
	s.cacheTTL = defaultCacheTTL
	if fc.CacheTTL != "" {
		d, err := time.ParseDuration(fc.CacheTTL)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("%s: %q is not a duration; expected one like 10m (0 turns the cache off)", fc.at("cache_ttl"), fc.CacheTTL)
		}
		s.cacheTTL = d
	}
	return s, nil
}

// stripSuffix removes the ssh host suffix (".porthole") from a device
// name, so ssh-config's host names reach the device.
func (s *settings) stripSuffix(device string) string {
	if s.hostSuffix != "" && len(device) > len(s.hostSuffix) && strings.HasSuffix(strings.ToLower(device), strings.ToLower(s.hostSuffix)) {
		return device[:len(device)-len(s.hostSuffix)]
	}
	return device
}

// validProfile: a profile name is a file name.
func validProfile(p string) bool {
	if p == "" || p[0] == '.' || len(p) > 64 {
		return false
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// newHubCred names a hub without a configured name by its host's first
// label ("hub-eu" for hub-eu.azure-devices.net).
func newHubCred(name, cs string) hubCred {
	host := ""
	for _, kv := range strings.Split(cs, ";") {
		if v, ok := strings.CutPrefix(kv, "HostName="); ok {
			host = strings.ToLower(strings.TrimSpace(v))
		}
	}
	if name == "" {
		name, _, _ = strings.Cut(host, ".")
	}
	return hubCred{name: name, host: host, connectionString: cs}
}

// hubList returns the config's hubs sorted by name, the single
// connection_string (if any) first.
func (fc *fileConfig) hubList(stderr io.Writer) ([]hubCred, error) {
	var hubs []hubCred
	if fc.ConnectionString != "" {
		hubs = append(hubs, newHubCred("", fc.ConnectionString))
	}
	names := make([]string, 0, len(fc.Hubs))
	for n := range fc.Hubs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		c := fc.Hubs[n]
		v, err := c.value(fc, "hubs."+n, stderr)
		if err != nil {
			return nil, err
		}
		if v == "" {
			return nil, fmt.Errorf("%s: no credential; expected connection_string or connection_string_file", fc.at("hubs."+n))
		}
		field := "hubs." + n + ".connection_string"
		if c.ConnectionStringFile != "" {
			field += "_file"
		}
		if err := fc.checkConnectionString(v, field, "hub"); err != nil {
			return nil, err
		}
		h := newHubCred(n, v)
		if slices.ContainsFunc(hubs, func(o hubCred) bool { return o.host == h.host }) {
			continue // the single connection_string names it already
		}
		hubs = append(hubs, h)
	}
	return hubs, nil
}

// value returns the credential's connection string, reading the file it
// names.
func (c credential) value(fc *fileConfig, field string, stderr io.Writer) (string, error) {
	configPath := fc.path
	if c.ConnectionString != "" && c.ConnectionStringFile != "" {
		return "", fmt.Errorf("%s: both connection_string and connection_string_file; expected one of them", fc.at(field))
	}
	if c.ConnectionStringFile == "" {
		return c.ConnectionString, nil
	}
	p := c.ConnectionStringFile
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, rest)
		}
	} else if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(configPath), p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("%s: cannot read it: %w", fc.at(field+".connection_string_file"), err)
	}
	if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(stderr, "porthole: warning: %s holds a connection string but is readable by others (mode %v); chmod 600 it\n", p, st.Mode().Perm())
	}
	return strings.TrimSpace(string(b)), nil
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
	if err := checkConfigKeys(path, b); err != nil {
		return fc, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		// yaml errors quote lines, not values of other keys; keep the path.
		return fc, fmt.Errorf("config %s: %w", path, err)
	}
	fc.path, fc.lines = path, configLines(b)
	inline := fc.ConnectionString != "" || fc.DPSConnectionString != "" || fc.DPS.ConnectionString != ""
	for _, h := range fc.Hubs {
		inline = inline || h.ConnectionString != ""
	}
	if inline {
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

// dpsClient returns a client for the DPS connection string.
func (s *settings) dpsClient() (*service.DPSClient, error) {
	if s.dpsConnectionString == "" {
		return nil, usagef("no DPS connection string: use --dps-connection-string, $%s or dps_connection_string in the config file", envDPSConnectionString)
	}
	if err := checkServiceString(s.dpsConnectionString, "DPS"); err != nil {
		return nil, err
	}
	cfg, err := s.serviceConfig(s.dpsConnectionString)
	if err != nil {
		return nil, err
	}
	return service.NewDPS(cfg)
}
