package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain runs porthole's real main when the test binary is started as
// porthole by a test (runMainEnv), else the tests.
func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Args = append([]string{"porthole"}, os.Args[1:]...)
		main()
		return
	}
	goleak.VerifyTestMain(m)
}

// runMainEnv makes the test binary run porthole's main.
const runMainEnv = "PORTHOLE_TEST_RUN_MAIN"

const testKey = "c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXk=" // base64, 32 bytes

func cs(host string) string {
	return "HostName=" + host + ";SharedAccessKeyName=iothubowner;SharedAccessKey=" + testKey
}

// testEnv returns an env with the given environment variables and a config
// directory of its own.
func testEnv(t *testing.T, vars map[string]string) *env {
	t.Helper()
	dir := t.TempDir()
	return &env{
		getenv:        func(k string) string { return vars[k] },
		executable:    func() (string, error) { return "/opt/porthole/bin/porthole", nil },
		command:       exec.CommandContext,
		userConfigDir: func() (string, error) { return dir, nil },
		userCacheDir:  func() (string, error) { return filepath.Join(dir, "cache"), nil },
	}
}

func writeConfig(t *testing.T, e *env, body string, mode os.FileMode) string {
	t.Helper()
	dir, _ := e.userConfigDir()
	path := filepath.Join(dir, "porthole", "config.yaml")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSettingsPrecedence: flags beat the environment, which beats the
// config file.
func TestSettingsPrecedence(t *testing.T) {
	const file = "connection_string: " + "HostName=file;SharedAccessKeyName=p;SharedAccessKey=" + testKey + "\n" +
		"dps_connection_string: HostName=dpsfile;SharedAccessKeyName=p;SharedAccessKey=" + testKey + "\n" +
		"ca_file: /file/ca.pem\nresolve: [\"a.example:443=127.0.0.1:1\"]\n"
	tests := []struct {
		name               string
		vars               map[string]string
		flags              []string
		config             string
		wantHost, wantDPS  string
		wantCA             string
		wantResolve        map[string]string
		wantFromFlag       bool
		wantErr            bool
		wantWarningOnPerms bool
	}{
		{name: "file only", config: file, wantHost: "file", wantDPS: "dpsfile", wantCA: "/file/ca.pem",
			wantResolve: map[string]string{"a.example:443": "127.0.0.1:1"}},
		{name: "env over file", config: file, vars: map[string]string{envConnectionString: cs("env"), envDPSConnectionString: cs("dpsenv")},
			wantHost: "env", wantDPS: "dpsenv", wantCA: "/file/ca.pem", wantResolve: map[string]string{"a.example:443": "127.0.0.1:1"}},
		{name: "flags over env", config: file, vars: map[string]string{envConnectionString: cs("env")},
			flags:    []string{"--connection-string", cs("flag"), "--ca", "/flag/ca.pem", "--resolve", "B.example:8443=127.0.0.2:2", "--dps-connection-string", cs("dpsflag")},
			wantHost: "flag", wantDPS: "dpsflag", wantCA: "/flag/ca.pem", wantResolve: map[string]string{"a.example:443": "127.0.0.1:1", "b.example:8443": "127.0.0.2:2"}, wantFromFlag: true},
		{name: "nothing", wantResolve: map[string]string{}},
		{name: "unknown key", config: "connection_strings: x\n", wantErr: true},
		{name: "bad resolve", config: "resolve: [\"nope\"]\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := testEnv(t, tt.vars)
			if tt.config != "" {
				writeConfig(t, e, tt.config, 0o600)
			}
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			var cf connFlags
			cf.register(fs)
			if err := fs.Parse(tt.flags); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			s, err := loadSettings(e, &cf, &stderr)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				if strings.Contains(err.Error(), testKey) {
					t.Errorf("error shows the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			host := func(c string) string {
				if c == "" {
					return ""
				}
				h, _, _ := strings.Cut(strings.TrimPrefix(c, "HostName="), ";")
				return h
			}
			if host(s.connectionString) != tt.wantHost || host(s.dpsConnectionString) != tt.wantDPS || s.caFile != tt.wantCA ||
				!reflect.DeepEqual(s.resolve, tt.wantResolve) || s.connectionFromFlag != tt.wantFromFlag {
				t.Errorf("got hub %q dps %q ca %q resolve %v fromFlag %v", host(s.connectionString), host(s.dpsConnectionString), s.caFile, s.resolve, s.connectionFromFlag)
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr: %s", stderr.String())
			}
		})
	}
}

func TestConfigPathFromEnvAndPermissions(t *testing.T) {
	e := testEnv(t, nil)
	path := filepath.Join(t.TempDir(), "other.yaml")
	if err := os.WriteFile(path, []byte("connection_string: "+cs("other")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.getenv = func(k string) string {
		if k == envConfig {
			return path
		}
		return ""
	}
	var stderr bytes.Buffer
	s, err := loadSettings(e, &connFlags{}, &stderr)
	if err != nil || !strings.Contains(s.connectionString, "HostName=other") || s.configPath != path {
		t.Fatalf("%+v %v", s, err)
	}
	if !strings.Contains(stderr.String(), "readable by others") || strings.Contains(stderr.String(), testKey) {
		t.Errorf("warning %q", stderr.String())
	}
	// An explicit config that does not exist is an error.
	if _, err := loadSettings(e, &connFlags{configPath: filepath.Join(t.TempDir(), "missing.yaml")}, io.Discard); err == nil {
		t.Error("missing explicit config accepted")
	}
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args       []string
		pos, extra []string
		stream     string
	}{
		{[]string{"dev1"}, []string{"dev1"}, nil, "ssh"},
		{[]string{"dev1", "--stream", "vnc"}, []string{"dev1"}, nil, "vnc"},
		{[]string{"--stream=vnc", "dev1", "m"}, []string{"dev1", "m"}, nil, "vnc"},
		{[]string{"dev1", "--", "-p", "22", "uptime"}, []string{"dev1"}, []string{"-p", "22", "uptime"}, "ssh"},
		{[]string{"dev1", "--stream", "x", "--"}, []string{"dev1"}, []string{}, "x"},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		stream := fs.String("stream", "ssh", "")
		pos, extra, err := parse(fs, tt.args)
		if err != nil || !reflect.DeepEqual(pos, tt.pos) || len(extra) != len(tt.extra) || (len(extra) > 0 && !reflect.DeepEqual(extra, tt.extra)) || *stream != tt.stream {
			t.Errorf("%q → %q %q %q %v", tt.args, pos, extra, *stream, err)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var ue *usageError
	if _, _, err := parse(fs, []string{"--nope"}); !errors.As(err, &ue) {
		t.Errorf("unknown flag: %v", err)
	}
}

func TestResolveDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	m, err := parseResolve([]string{"Lab-Hub.example:443=" + ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	s := &settings{resolve: m}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := s.dialer()(ctx, "tcp", "lab-hub.EXAMPLE:443")
	if err != nil {
		t.Fatalf("mapped dial: %v", err)
	}
	c.Close()
	ln.Close()
	<-done
	for _, bad := range []string{"a", "a:1", "a:1=b", "a=b:1", ":1=b:2", "a:1=:2"} {
		if _, err := parseResolve([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	e := testEnv(t, nil)
	ctx := context.Background()
	var ue *usageError
	for _, args := range [][]string{
		nil, {"bogus"}, {"stdio"}, {"stdio", "a", "b"}, {"proxy", "dev1"}, {"invoke", "dev1"},
		{"invoke", "dev1", "m", "--payload", "{"}, {"dps"}, {"dps", "frob", "x"}, {"dps", "enroll"},
		{"dps", "enroll", "x", "--symmetric-key", "not base64!"}, {"ssh"},
		{"stdio", "dev1"}, // no connection string anywhere
		{"dps", "get", "x"},
	} {
		err := runEnv(ctx, e, args, strings.NewReader(""), io.Discard, io.Discard)
		if !errors.As(err, &ue) {
			t.Errorf("%q: %v", args, err)
		}
	}
	var out bytes.Buffer
	if err := runEnv(ctx, e, []string{"help"}, nil, &out, io.Discard); err != nil || !strings.Contains(out.String(), "porthole ssh") {
		t.Errorf("help: %v %q", err, out.String())
	}
}

// TestProfiles: --profile reads profiles/<name>.yaml and keeps a lookup
// cache of its own; a profile that does not exist is an error.
func TestProfiles(t *testing.T) {
	e := testEnv(t, nil)
	dir, _ := e.userConfigDir()
	lab := filepath.Join(dir, "porthole", "profiles", "lab.yaml")
	if err := os.MkdirAll(filepath.Dir(lab), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lab, []byte("hubs:\n  lab-hub:\n    connection_string: "+cs("lab.example")+"\nssh:\n  host_suffix: .lab\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, e, "connection_string: "+cs("prod.example")+"\n", 0o600)
	s, err := loadSettings(e, &connFlags{profile: "lab"}, io.Discard)
	if err != nil || len(s.hubs) != 1 || s.hubs[0].name != "lab-hub" || s.hubs[0].host != "lab.example" || s.hostSuffix != ".lab" || s.configPath != lab {
		t.Fatalf("lab: %+v %v", s, err)
	}
	if got := s.stripSuffix("dev1.lab"); got != "dev1" {
		t.Errorf("stripSuffix %q", got)
	}
	s, err = loadSettings(e, &connFlags{}, io.Discard)
	if err != nil || len(s.hubs) != 1 || s.hubs[0].host != "prod.example" || s.hostSuffix != ".porthole" {
		t.Fatalf("default: %+v %v", s, err)
	}
	if _, err := loadSettings(e, &connFlags{profile: "nope"}, io.Discard); err == nil {
		t.Error("a missing profile was accepted")
	}
	if _, err := loadSettings(e, &connFlags{profile: "../x"}, io.Discard); err == nil {
		t.Error("a profile name with a path was accepted")
	}
	if openCache(e, "lab").path == openCache(e, "").path {
		t.Error("profiles share a cache")
	}
}

// TestConfigValueErrors: a bad value in the operator config is reported as
// file:line: field: what is wrong; what is expected — never as a flag
// (--resolve) it was not given as, never echoing a key.
func TestConfigValueErrors(t *testing.T) {
	deviceCS := "HostName=hub-eu.local;DeviceId=dev1;SharedAccessKey=" + testKey
	for _, tc := range []struct {
		name, config, want string
	}{
		{"cache_ttl", "connection_string: " + cs("a") + "\ncache_ttl: banana\n",
			`c.yaml:2: cache_ttl: "banana" is not a duration; expected one like 10m (0 turns the cache off)`},
		{"hub without credential", "hubs:\n  eu: {}\n",
			"c.yaml:2: hubs.eu: no credential; expected connection_string or connection_string_file"},
		{"hub with both", "hubs:\n  eu:\n    connection_string: " + cs("a") + "\n    connection_string_file: a.cs\n",
			"c.yaml:2: hubs.eu: both connection_string and connection_string_file; expected one of them"},
		{"unreadable file", "hubs:\n  eu:\n    connection_string_file: missing.cs\n",
			"c.yaml:3: hubs.eu.connection_string_file: cannot read it: open "},
		{"resolve entry", "connection_string: " + cs("a") + "\nresolve:\n  - \"a:443=127.0.0.1:1\"\n  - nonsense\n",
			`c.yaml:4: resolve[1]: "nonsense" is not host:port=ip:port; expected one like hub-eu.local:443=127.0.0.1:8443`},
		{"malformed hub string", "hubs:\n  eu:\n    connection_string: HostName=a;" + testKey + "\n",
			"c.yaml:3: hubs.eu.connection_string: not a service connection string"},
		{"device string for a hub", "hubs:\n  eu:\n    connection_string: " + deviceCS + "\n",
			"c.yaml:3: hubs.eu.connection_string: this is a device connection string"},
		{"malformed top-level string", "connection_string: nonsense\n",
			"c.yaml:1: connection_string: not a service connection string"},
		{"malformed dps string", "connection_string: " + cs("a") + "\ndps:\n  connection_string: HostName=d\n",
			"c.yaml:3: dps.connection_string: not a service connection string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "c.yaml")
			if err := os.WriteFile(path, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadSettings(testEnv(t, nil), &connFlags{configPath: path}, io.Discard)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			want := filepath.Join(dir, tc.want)
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("err %q\nwant %q…", err, want)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error shows the key: %q", err)
			}
		})
	}
}

// TestConfigMergeKeys: YAML merge keys ("<<: *anchor") are read as the
// decoder reads them; a typo inside the merged mapping is still reported.
func TestConfigMergeKeys(t *testing.T) {
	dir := t.TempDir()
	good := "hubs:\n  eu: &c\n    connection_string: " + cs("hub-eu.local") + "\n  us:\n    <<: *c\n"
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := loadSettings(testEnv(t, nil), &connFlags{configPath: path}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.hubs) != 1 || s.hubs[0].name != "eu" { // us is the same hub: listed once
		t.Errorf("hubs %+v", s.hubs)
	}
	bad := "x: &c\n  connection_strng: a\nhubs:\n  us:\n    <<: *c\n"
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = loadSettings(testEnv(t, nil), &connFlags{configPath: path}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `c.yaml:2: hubs.us.connection_strng: unknown key "connection_strng" (did you mean "connection_string"?)`) {
		t.Errorf("err %v", err)
	}
}
