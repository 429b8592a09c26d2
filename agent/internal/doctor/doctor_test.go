package doctor

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/agent/internal/state"
	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/auth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is a running sim plus a directory for the device's files.
type env struct {
	sim *hubsimtest.Sim
	dir string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	sim := hubsimtest.New(t, hubsimtest.WithDPSConfig(func(c *hubsimtest.DPSConfig) { c.AssignDelay = 0 }))
	return &env{sim: sim, dir: t.TempDir()}
}

// device describes the config written for a test.
type device struct {
	regID      string
	key        string // inline symmetric_key
	keyFile    string // or symmetric_key_file
	caFile     string // "" = the sim's CA
	targets    map[string]string
	stateDir   string // "" = a fresh directory
	configMode os.FileMode
	noResolve  bool
	idScope    string // "" = the sim's
}

// config writes agent.yaml for dev and loads it like the agent does.
func (e *env) config(t *testing.T, dev device) *config.Config {
	t.Helper()
	dir := t.TempDir()
	if dev.caFile == "" {
		dev.caFile = e.sim.CAFile
	}
	if dev.stateDir == "" {
		dev.stateDir = filepath.Join(dir, "state")
		if err := os.Mkdir(dev.stateDir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if dev.targets == nil {
		// Not the machine's own port 22: a listener of the test's.
		dev.targets = map[string]string{"ssh": sshTarget(t, "SSH-2.0-OpenSSH_9.6\r\n")}
	}
	if dev.configMode == 0 {
		dev.configMode = 0o600
	}
	if dev.idScope == "" {
		dev.idScope = e.sim.IDScope
	}
	var b strings.Builder
	fmt.Fprintf(&b, "provisioning:\n  global_endpoint: %s\n  id_scope: %s\n  registration_id: %s\n  transport: https\n  attestation:\n    type: symmetric_key\n",
		e.sim.GlobalEndpoint, dev.idScope, dev.regID)
	if dev.keyFile != "" {
		fmt.Fprintf(&b, "    symmetric_key_file: %s\n", dev.keyFile)
	} else {
		fmt.Fprintf(&b, "    symmetric_key: %s\n", dev.key)
	}
	b.WriteString("hub:\n  transport: mqtt\nstreams:\n  targets:\n")
	for n, a := range dev.targets {
		fmt.Fprintf(&b, "    %s: %s\n", n, a)
	}
	fmt.Fprintf(&b, "state_dir: %s\nca_file: %s\n", dev.stateDir, dev.caFile)
	if !dev.noResolve {
		b.WriteString("resolve:\n")
		fmt.Fprintf(&b, "  - %s:443=%s\n", e.sim.GlobalEndpoint, e.sim.HTTPSAddr)
		for _, h := range e.sim.HubHostNames {
			fmt.Fprintf(&b, "  - %s:8883=%s\n", h, e.sim.MQTTAddr)
		}
	}
	path := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, dev.configMode); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(path)
	if err != nil {
		t.Fatalf("config:\n%s\n%v", b.String(), err)
	}
	return cfg
}

// register runs a DPS registration for regID over HTTPS, as the agent
// would at first start, and returns the assigned hub.
func (e *env) register(t *testing.T, regID, key string) string {
	t.Helper()
	tok, err := auth.DPSToken(e.sim.IDScope, regID, key, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	base := "https://" + e.sim.GlobalEndpoint + "/" + e.sim.IDScope + "/registrations/" + regID
	do := func(method, url string, body string) map[string]any {
		req, _ := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
		req.Header.Set("Authorization", tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.sim.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %s %v %v", method, url, resp.Status, m, err)
		}
		return m
	}
	m := do(http.MethodPut, base+"/register?api-version=2021-06-01", `{"registrationId":"`+regID+`"}`)
	for i := 0; m["status"] == "assigning" && i < 50; i++ {
		m = do(http.MethodGet, fmt.Sprintf("%s/operations/%v?api-version=2021-06-01", base, m["operationId"]), "")
	}
	rs, _ := m["registrationState"].(map[string]any)
	hub, _ := rs["assignedHub"].(string)
	if m["status"] != "assigned" || hub == "" {
		t.Fatalf("registration did not complete: %v", m)
	}
	return hub
}

// sshTarget listens on loopback and greets every connection with banner.
func sshTarget(t *testing.T, banner string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, banner)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func run(t *testing.T, cfg *config.Config, o Options) Report {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	r := Run(t.Context(), cfg, o)
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", buf.String())
	return r
}

// want asserts the check named by prefix has status and that its detail
// and fix together contain every word.
func want(t *testing.T, r Report, prefix string, status Status, words ...string) {
	t.Helper()
	c, ok := r.Find(prefix)
	if !ok {
		t.Errorf("no check %q", prefix)
		return
	}
	if c.Status != status {
		t.Errorf("%s: status %s, want %s (%s / %s)", c.Name, c.Status, status, c.Detail, c.Fix)
	}
	text := c.Detail + " | " + c.Fix
	for _, w := range words {
		if !strings.Contains(text, w) {
			t.Errorf("%s: %q lacks %q", c.Name, text, w)
		}
	}
}

func TestAllGreen(t *testing.T) {
	e := newEnv(t)
	key := e.sim.EnrollSymmetricKey("dev-green", nil)
	hub := e.register(t, "dev-green", key)
	target := sshTarget(t, "SSH-2.0-OpenSSH_9.6p1 Debian\r\n")
	cfg := e.config(t, device{regID: "dev-green", key: key, targets: map[string]string{"ssh": target}})
	// A state file as the agent leaves it.
	st, err := state.Open(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(state.State{GlobalEndpoint: e.sim.GlobalEndpoint, IDScope: e.sim.IDScope, RegistrationID: "dev-green",
		AssignedHub: hub, DeviceID: "dev-green", LastRegistered: time.Now()}); err != nil {
		t.Fatal(err)
	}

	r := run(t, cfg, Options{LookupHost: func(context.Context, string) ([]string, error) {
		t.Error("DNS asked although every name is pinned by resolve")
		return nil, errors.New("no DNS in tests")
	}})
	for _, c := range r.Checks {
		if c.Status != StatusOK {
			t.Errorf("%s: %s: %s (%s)", c.Name, c.Status, c.Detail, c.Fix)
		}
	}
	if !r.OK() {
		t.Error("OK() = false")
	}
	want(t, r, nameConfig, StatusOK, "mode 0600")
	want(t, r, nameState, StatusOK, "cached assignment: hub "+hub)
	want(t, r, nameCreds, StatusOK, "signs a DPS token")
	want(t, r, nameDPSDNS, StatusOK, "pinned", e.sim.HTTPSAddr)
	want(t, r, nameDPSTLS, StatusOK, "TLS 1.", e.sim.CAFile)
	want(t, r, nameClock, StatusOK, "within")
	want(t, r, nameDPSLookup, StatusOK, "assigned to hub "+hub)
	want(t, r, nameHubDNS+" (assigned by DPS)", StatusOK, "pinned")
	want(t, r, nameHubTLS+" (assigned by DPS) ("+hub+":8883)", StatusOK, "TLS 1.")
	want(t, r, nameTarget, StatusOK, "OpenSSH_9.6p1")
	if c, _ := r.Find(nameTarget); c.Fix != "" {
		t.Errorf("OpenSSH target got a tip: %q", c.Fix)
	}
	var buf bytes.Buffer
	_ = r.Write(&buf)
	if !strings.HasSuffix(buf.String(), "All checks passed.\n") {
		t.Errorf("summary: %q", buf.String())
	}
	if strings.Contains(buf.String(), key) {
		t.Error("the report prints the device key")
	}
}

func TestNotRegisteredYet(t *testing.T) {
	e := newEnv(t)
	key := e.sim.EnrollSymmetricKey("dev-new", nil)
	cfg := e.config(t, device{regID: "dev-new", key: key, targets: map[string]string{"ssh": sshTarget(t, "SSH-2.0-x\r\n")}})
	r := run(t, cfg, Options{})
	want(t, r, nameState, StatusOK, "no cached assignment")
	// DPS checked the credential before saying there is no registration:
	// an OK with a note, not a warning.
	want(t, r, nameDPSLookup, StatusOK, "DPS accepts the credential", "registration ID dev-new has not registered yet", "before the first start")
	want(t, r, nameHubDNS, StatusSkip, "not registered")
	if !r.OK() {
		t.Error("a device that has not registered yet is not a failure")
	}
}

func TestFailures(t *testing.T) {
	e := newEnv(t)
	key := e.sim.EnrollSymmetricKey("dev-1", nil)
	ok := sshTarget(t, "SSH-2.0-OpenSSH_9.6\r\n")

	otherCA := writeSelfSignedCA(t)
	tests := []struct {
		name  string
		dev   device
		opts  Options
		check func(t *testing.T, r Report)
	}{
		{"wrong CA", device{regID: "dev-1", key: key, caFile: otherCA}, Options{}, func(t *testing.T, r Report) {
			want(t, r, nameDPSTLS, StatusFail, "not trusted", "set ca_file")
			want(t, r, nameDPSLookup, StatusSkip, "cannot be reached")
			want(t, r, nameClock, StatusSkip)
		}},
		{"wrong key", device{regID: "dev-1", key: hubsimtest.NewKey(t)}, Options{}, func(t *testing.T, r Report) {
			want(t, r, nameDPSTLS, StatusOK)
			want(t, r, nameDPSLookup, StatusFail, "does not match the enrollment", "copy the key again")
		}},
		{"not enrolled", device{regID: "dev-unknown", key: key}, Options{}, func(t *testing.T, r Report) {
			want(t, r, nameDPSLookup, StatusFail, "no enrollment for registration ID dev-unknown")
		}},
		{"unreachable target", device{regID: "dev-1", key: key, targets: map[string]string{"ssh": closedPort(t), "web": ok}}, Options{}, func(t *testing.T, r Report) {
			want(t, r, nameTarget+` "ssh"`, StatusFail, "nothing answers", "refused", "start the service", "streams.targets.ssh")
			want(t, r, nameTarget+` "web"`, StatusOK)
		}},
		{"DNS broken", device{regID: "dev-1", key: key, noResolve: true}, Options{
			LookupHost: func(_ context.Context, host string) ([]string, error) {
				return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
			},
			DialContext: e.sim.DialContext,
		}, func(t *testing.T, r Report) {
			want(t, r, nameDPSDNS, StatusFail, "cannot find "+e.sim.GlobalEndpoint, "resolv.conf")
			// Not a second failure for the same cause.
			want(t, r, nameDPSTLS, StatusSkip, "does not resolve")
			want(t, r, nameDPSLookup, StatusSkip)
			for _, c := range failures(r) {
				if c.Name != nameDPSDNS && !strings.HasPrefix(c.Name, nameTarget) { // (this test's dialer reaches no target)
					t.Errorf("a second failure: %s: %s", c.Name, c.Detail)
				}
			}
		}},
		{"unknown ID scope", device{regID: "dev-1", key: key, idScope: "0ne0000BAD0"}, Options{}, func(t *testing.T, r Report) {
			want(t, r, nameDPSTLS, StatusOK)
			want(t, r, nameDPSLookup, StatusFail, "DPS does not know the ID scope 0ne0000BAD0", "overview page")
		}},
		{"DPS unreachable", device{regID: "dev-1", key: key, noResolve: true}, Options{
			LookupHost: func(context.Context, string) ([]string, error) { return []string{"127.0.0.1"}, nil },
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, closedPort(t))
			},
		}, func(t *testing.T, r Report) {
			want(t, r, nameDPSTLS, StatusFail, "refused the connection")
			want(t, r, nameDPSLookup, StatusSkip)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.config(t, tt.dev)
			r := run(t, cfg, tt.opts)
			if r.OK() {
				t.Error("OK() = true with a failure")
			}
			tt.check(t, r)
		})
	}
}

func TestClock(t *testing.T) {
	e := newEnv(t)
	key := e.sim.EnrollSymmetricKey("dev-clock", nil)
	tests := []struct {
		name   string
		now    func() time.Time
		status Status
		words  []string
	}{
		{"in sync", time.Now, StatusOK, []string{"within"}},
		{"slightly ahead", func() time.Time { return time.Now().Add(2 * time.Minute) }, StatusWarn, []string{"2m0s ahead of", "NTP"}},
		{"far behind", func() time.Time { return time.Now().Add(-20 * time.Minute) }, StatusFail, []string{"20m0s behind", "refuse tokens"}},
		{"1970", func() time.Time { return time.Unix(86400, 0) }, StatusFail, []string{"1970-01-02", "no battery-backed clock", "NTP"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.config(t, device{regID: "dev-clock", key: key})
			r := run(t, cfg, Options{Now: tt.now})
			want(t, r, nameClock, tt.status, tt.words...)
			switch tt.name {
			case "far behind":
				// Still inside the token's hour and the certificate's
				// backdating: everything else works.
				want(t, r, nameDPSTLS, StatusOK)
			case "1970":
				want(t, r, nameDPSTLS, StatusFail, "not yet valid", "check the date")
			}
		})
	}
}

func TestPermissions(t *testing.T) {
	e := newEnv(t)
	key := e.sim.EnrollSymmetricKey("dev-perm", nil)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "device.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(keyFile, 0o644)
	stateDir := filepath.Join(dir, "state")
	os.Mkdir(stateDir, 0o700)
	if err := os.WriteFile(filepath.Join(stateDir, state.FileName), []byte(`{"version":1,"registrationId":"dev-perm","assignedHub":"h","deviceId":"d"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(stateDir, state.FileName), 0o644)
	notDir := filepath.Join(dir, "plainfile")
	os.WriteFile(notDir, nil, 0o600)

	opts := Options{SkipLookup: true}
	t.Run("inline key in a world-readable config", func(t *testing.T) {
		cfg := e.config(t, device{regID: "dev-perm", key: key, configMode: 0o644})
		r := run(t, cfg, opts)
		want(t, r, nameConfig, StatusWarn, "symmetric_key", "every user", "0644", "chmod 600")
		if _, ok := r.Find(nameDPSLookup); ok {
			t.Error("SkipLookup ran the lookup")
		}
	})
	t.Run("world-writable config", func(t *testing.T) {
		cfg := e.config(t, device{regID: "dev-perm", keyFile: keyFile, configMode: 0o666})
		r := run(t, cfg, opts)
		want(t, r, nameConfig, StatusFail, "changed by every user")
	})
	t.Run("readable key file and state file", func(t *testing.T) {
		cfg := e.config(t, device{regID: "dev-perm", keyFile: keyFile, configMode: 0o644, stateDir: stateDir})
		r := run(t, cfg, opts)
		want(t, r, nameConfig, StatusOK) // no inline secret
		want(t, r, nameSecrets, StatusWarn, keyFile, "0644", "chmod 600")
		want(t, r, nameState, StatusWarn, "other users can read", "chmod 600")
	})
	t.Run("state dir is a file", func(t *testing.T) {
		cfg := e.config(t, device{regID: "dev-perm", key: key, stateDir: notDir})
		cfg.StateDir = notDir
		r := run(t, cfg, opts)
		want(t, r, nameState, StatusFail, "not a directory")
	})
	t.Run("state dir missing", func(t *testing.T) {
		cfg := e.config(t, device{regID: "dev-perm", key: key})
		cfg.StateDir = filepath.Join(dir, "nope")
		r := run(t, cfg, opts)
		want(t, r, nameState, StatusWarn, "does not exist yet", "mkdir")
	})
}

func TestDropbearTip(t *testing.T) {
	e := newEnv(t)
	key := e.sim.EnrollSymmetricKey("dev-db", nil)
	cfg := e.config(t, device{regID: "dev-db", key: key, targets: map[string]string{"ssh": sshTarget(t, "SSH-2.0-dropbear_2022.83\r\n")}})
	r := run(t, cfg, Options{SkipLookup: true})
	want(t, r, nameTarget, StatusOK, "dropbear_2022.83", "-W 1048576")
	var buf bytes.Buffer
	_ = r.Write(&buf)
	if !strings.Contains(buf.String(), "tip: dropbear") {
		t.Errorf("tip not printed: %s", buf.String())
	}
}

// writeSelfSignedCA writes a CA certificate unrelated to the sim's.
func writeSelfSignedCA(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(7),
		Subject:               pkix.Name{CommonName: "Some Other CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRefusedWithWrongClock: when DPS refuses the token and the clock is
// known to be off, the fix is the clock, not the key.
func TestRefusedWithWrongClock(t *testing.T) {
	e := newEnv(t)
	e.sim.EnrollSymmetricKey("dev-skew", nil)
	cfg := e.config(t, device{regID: "dev-skew", key: hubsimtest.NewKey(t)})
	d := newDoctor(t.Context(), cfg, Options{Timeout: 5 * time.Second})
	defer d.net.close()
	d.clockKnown, d.clockSkew = true, -10*time.Minute
	d.lookup(e.sim.GlobalEndpoint, portHTTPS)
	want(t, Report{Checks: d.checks}, nameDPSLookup, StatusFail, "does not match", "fix the clock first")
}

// failures lists the failed checks of r.
func failures(r Report) []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == StatusFail {
			out = append(out, c)
		}
	}
	return out
}

// TestStateDirMode: a state directory other users can reach into is a
// warning with the fix (issue 11 finding 8: it used to be OK).
func TestStateDirMode(t *testing.T) {
	if !unixModes() {
		t.Skip("no file modes on this system")
	}
	e := newEnv(t)
	key := e.sim.EnrollSymmetricKey("dev-mode", nil)
	for _, tc := range []struct {
		mode   os.FileMode
		status Status
	}{
		{0o700, StatusOK},
		{0o755, StatusWarn},
		{0o750, StatusWarn},
	} {
		dir := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, tc.mode); err != nil {
			t.Fatal(err)
		}
		r := run(t, e.config(t, device{regID: "dev-mode", key: key, stateDir: dir}), Options{SkipLookup: true})
		if tc.status == StatusWarn {
			want(t, r, nameState, StatusWarn, fmt.Sprintf("mode %04o", tc.mode), "chmod 700 "+dir)
		} else {
			want(t, r, nameState, StatusOK)
		}
	}
}
