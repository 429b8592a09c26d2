package e2e

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/daemon"
	"github.com/porthole-iot/porthole/sdk/service"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

const (
	deviceID = "dev1"
	hubHost  = "hub-eu.local" // the hub the enrollment names
	// startTimeout bounds waiting for a process to come up.
	startTimeout = 60 * time.Second
)

// simStatus is hubsim's status file (--status-file), decoded here from its
// JSON independently of hubsim's own types.
type simStatus struct {
	CAFile string `json:"ca_file"`
	Ports  struct {
		HTTPS int `json:"https"`
		MQTT  int `json:"mqtt"`
	} `json:"ports"`
	DPS struct {
		IDScope                 string `json:"id_scope"`
		GlobalEndpoint          string `json:"global_endpoint"`
		ServiceConnectionString string `json:"service_connection_string"`
	} `json:"dps"`
	Hubs []struct {
		Name                    string `json:"name"`
		HostName                string `json:"hostname"`
		ServiceConnectionString string `json:"service_connection_string"`
	} `json:"hubs"`
}

func (s *simStatus) hubConnectionString(host string) string {
	for _, h := range s.Hubs {
		if h.HostName == host {
			return h.ServiceConnectionString
		}
	}
	return ""
}

// hostOf returns HostName= of a connection string.
func hostOf(cs string) string {
	for _, part := range strings.Split(cs, ";") {
		if v, ok := strings.CutPrefix(part, "HostName="); ok {
			return v
		}
	}
	return ""
}

// simConfigYAML is hubsim's config for the tests: the Azure-like default of
// 5 new streams per second per hub would throttle the concurrency test and
// the benchmark, so it is lifted; everything else is hubsim's default.
const simConfigYAML = `streams:
  new_per_second: 0
  concurrent_per_hub: 0
`

// sim is a running hubsim process.
type sim struct {
	*proc
	dir    string // holds its config, state dir and status file
	host   string // the address it listens on
	status simStatus
}

// startSim starts hubsim on loopback on the given ports (0: free ones) with
// its state in dir/hubsim, and waits for its status file.
func startSim(t testing.TB, dir string, httpsPort, mqttPort int) *sim {
	t.Helper()
	return startSimOn(t, dir, "127.0.0.1", httpsPort, mqttPort)
}

// startSimOn is startSim listening on host.
func startSimOn(t testing.TB, dir, host string, httpsPort, mqttPort int) *sim {
	t.Helper()
	return startSimConfig(t, dir, host, false, httpsPort, mqttPort)
}

// startSimConfig is startSimOn; with defaults, hubsim runs on its built-in
// configuration (Azure's stream limits: 5 new streams per second per hub,
// 50 at once) instead of simConfigYAML.
func startSimConfig(t testing.TB, dir, host string, defaults bool, httpsPort, mqttPort int) *sim {
	t.Helper()
	b := binaries(t)
	var args []string
	if !defaults {
		cfgPath := filepath.Join(dir, "hubsim.yaml")
		if err := os.WriteFile(cfgPath, []byte(simConfigYAML), 0o600); err != nil {
			t.Fatal(err)
		}
		args = []string{"-config", cfgPath}
	}
	statusPath := filepath.Join(dir, "hubsim-status.json")
	_ = os.Remove(statusPath) // a killed hubsim leaves a stale one
	p := startProc(t, dir, "hubsim", nil, b.hubsim, append(args, "-listen", host,
		"-https-port", strconv.Itoa(httpsPort), "-mqtt-port", strconv.Itoa(mqttPort),
		"-state-dir", filepath.Join(dir, "hubsim-state"), "-status-file", statusPath)...)
	s := &sim{proc: p, dir: dir, host: host}
	var data []byte
	testwait.For(t, startTimeout, "hubsim's status file", func() (bool, string) {
		if p.exited() {
			t.Fatalf("hubsim exited: %v\n%s", p.err, p.tail(30))
		}
		var err error
		data, err = os.ReadFile(statusPath)
		return err == nil, p.tail(5)
	})
	if err := json.Unmarshal(data, &s.status); err != nil {
		t.Fatalf("hubsim status file: %v", err)
	}
	if !filepath.IsAbs(s.status.CAFile) {
		t.Fatalf("hubsim CA file %q is not absolute", s.status.CAFile)
	}
	return s
}

func (s *sim) httpsAddr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.status.Ports.HTTPS)) }
func (s *sim) mqttAddr() string  { return net.JoinHostPort(s.host, strconv.Itoa(s.status.Ports.MQTT)) }

// agentResolve maps every name the agent may dial (DPS global endpoint; each
// hub's MQTT, MQTT-WS and streaming endpoint ports) to the sim.
func (s *sim) agentResolve() []string {
	https, mqtt := s.httpsAddr(), s.mqttAddr()
	r := []string{s.status.DPS.GlobalEndpoint + ":443=" + https}
	for _, h := range s.status.Hubs {
		r = append(r,
			h.HostName+":8883="+mqtt,
			h.HostName+":443="+https,
			h.HostName+":"+strconv.Itoa(s.status.Ports.HTTPS)+"="+https)
	}
	return r
}

// operatorResolve maps the hub's REST host and streaming endpoint.
func (s *sim) operatorResolve(hub string) []string {
	https := s.httpsAddr()
	return []string{hub + ":443=" + https, hub + ":" + strconv.Itoa(s.status.Ports.HTTPS) + "=" + https}
}

// serviceConfig is an sdk/service config reaching the sim from the test
// process the way porthole does with --ca and --resolve.
func (s *sim) serviceConfig(t testing.TB, connectionString string) service.Config {
	t.Helper()
	pem, err := os.ReadFile(s.status.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("hubsim CA file holds no certificate")
	}
	https := s.httpsAddr()
	port := strconv.Itoa(s.status.Ports.HTTPS)
	var d net.Dialer
	return service.Config{
		ConnectionString: connectionString,
		RootCAs:          pool,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, p, err := net.SplitHostPort(addr)
			if err != nil || (p != "443" && p != port) || strings.ContainsAny(host, ":") {
				return nil, fmt.Errorf("e2e: refusing to dial %q outside the sim", addr)
			}
			return d.DialContext(ctx, network, https)
		},
	}
}

// enroll creates (or replaces) the symmetric-key individual enrollment of
// deviceID, assigned to hubHost, through the sim's DPS service API.
func (s *sim) enroll(t testing.TB, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := service.NewDPS(s.serviceConfig(t, s.status.DPS.ServiceConnectionString))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.PutEnrollment(ctx, service.IndividualEnrollment{
		RegistrationID: deviceID,
		Attestation: &service.AttestationMechanism{Type: service.AttestationSymmetricKey,
			SymmetricKey: &service.SymmetricKeyAttestation{PrimaryKey: key, SecondaryKey: newKey(t)}},
		IoTHubHostName: hubHost,
	}); err != nil {
		t.Fatalf("enroll %s: %v", deviceID, err)
	}
}

// hubClient is a service client for hubHost (closed at cleanup).
func (s *sim) hubClient(t testing.TB) *service.Client {
	t.Helper()
	c, err := service.New(s.serviceConfig(t, s.status.hubConnectionString(hubHost)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newKey(t testing.TB) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// world is hubsim + an enrolled device running porthole-agent + the
// operator's porthole config.
type world struct {
	t           testing.TB
	dir         string
	sim         *sim
	key         string // the device's DPS key
	agent       *proc
	agentConfig string
	agentState  string
	opConfig    string // porthole's config file (0600)
	sshKey      string // the operator's private key; its .pub is authorized on the device
	user        string
	// agentExec is the agent's program and leading arguments (an emulator
	// and a cross-built agent, or "ip netns exec NAME agent"); nil runs the
	// host build.
	agentExec []string
	extraYAML string // appended to the agent's config
	logYAML   string // lines under the agent config's log: section
	// streamsExtra is YAML added under the agent config's streams key
	// (indented by two spaces), e.g. socks or audit settings.
	streamsExtra string
}

// newWorld starts hubsim, enrolls the device, writes the operator's
// config, and starts the agent with these stream targets. The operator
// logs in with the private key sshKey. It waits until the agent is
// connected.
func newWorld(t testing.TB, sshKey string, targets map[string]string) *world {
	t.Helper()
	return newWorldExec(t, sshKey, targets, nil)
}

// newWorldExec is newWorld with the agent started as agentExec (see the
// field); nil is the host build.
func newWorldExec(t testing.TB, sshKey string, targets map[string]string, agentExec []string) *world {
	t.Helper()
	return newWorldWith(t, worldOptions{sshKey: sshKey, targets: targets, agentExec: agentExec})
}

// worldOptions shape a world beyond the defaults.
type worldOptions struct {
	sshKey    string
	targets   map[string]string
	agentExec []string // see world.agentExec
	simHost   string   // hubsim's listen address ("": 127.0.0.1)
	dir       string   // the world's directory ("": a new temporary one)
	agentYAML string   // appended to the agent's config
	stateDir  string   // the agent's state_dir ("": dir/agent-state)
	logYAML   string   // lines added under the agent's log: section
	// streamsYAML is added under the agent's streams: section (indented
	// by two spaces).
	streamsYAML string
	// simDefaults runs hubsim on its built-in configuration, with Azure's
	// stream limits (see startSimConfig).
	simDefaults bool
}

// newWorldWith is newWorld shaped by o.
func newWorldWith(t testing.TB, o worldOptions) *world {
	t.Helper()
	requireLinux(t)
	dir := o.dir
	if dir == "" {
		dir = t.TempDir()
	}
	host := o.simHost
	if host == "" {
		host = "127.0.0.1"
	}
	w := &world{t: t, dir: dir, user: currentUser(t), sshKey: o.sshKey, agentExec: o.agentExec,
		extraYAML: o.agentYAML, logYAML: o.logYAML, agentState: o.stateDir, streamsExtra: o.streamsYAML}
	w.sim = startSimConfig(t, dir, host, o.simDefaults, 0, 0)
	w.key = newKey(t)
	w.sim.enroll(t, w.key)
	w.writeOperatorConfig()
	w.writeAgentConfig(o.targets)
	w.startAgent()
	return w
}

func (w *world) writeOperatorConfig() {
	t := w.t
	cfg := struct {
		ConnectionString string   `json:"connection_string"`
		CAFile           string   `json:"ca_file"`
		Resolve          []string `json:"resolve"`
	}{w.sim.status.hubConnectionString(hubHost), w.sim.status.CAFile, w.sim.operatorResolve(hubHost)}
	data, err := json.Marshal(cfg) // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	w.opConfig = filepath.Join(w.dir, "porthole.yaml")
	if err := os.WriteFile(w.opConfig, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (w *world) writeAgentConfig(targets map[string]string) {
	t := w.t
	keyFile := filepath.Join(w.dir, "device.key")
	if err := os.WriteFile(keyFile, []byte(w.key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if w.agentState == "" {
		w.agentState = filepath.Join(w.dir, "agent-state")
	}
	names := make([]string, 0, len(targets))
	for n := range targets {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "provisioning:\n  global_endpoint: %s\n  id_scope: %s\n  registration_id: %s\n",
		w.sim.status.DPS.GlobalEndpoint, w.sim.status.DPS.IDScope, deviceID)
	fmt.Fprintf(&b, "  attestation:\n    type: symmetric_key\n    symmetric_key_file: %s\n", keyFile)
	fmt.Fprintf(&b, "streams:\n  max_concurrent: 16\n  targets:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "    %s: %s\n", n, targets[n])
	}
	b.WriteString(w.streamsExtra)
	fmt.Fprintf(&b, "state_dir: %s\nca_file: %s\nresolve:\n", w.agentState, w.sim.status.CAFile)
	for _, r := range w.sim.agentResolve() {
		fmt.Fprintf(&b, "  - %s\n", r)
	}
	b.WriteString("log:\n  level: info\n")
	b.WriteString(w.logYAML)
	b.WriteString(w.extraYAML)
	w.agentConfig = filepath.Join(w.dir, "agent.yaml")
	if err := os.WriteFile(w.agentConfig, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startAgent runs "porthole-agent run" and waits until it is connected.
func (w *world) startAgent() {
	w.t.Helper()
	argv := w.agentExec
	if argv == nil {
		argv = []string{binaries(w.t).agent}
	}
	args := append(append([]string(nil), argv[1:]...), "-config", w.agentConfig, "run")
	w.agent = startProc(w.t, w.dir, "porthole-agent", nil, argv[0], args...)
	w.waitAgent("connected", startTimeout, func(s *daemon.Status) bool { return s.Connected })
}

// agentStatus asks the running agent over its control socket.
func (w *world) agentStatus(ctx context.Context) (*daemon.Status, error) {
	r, err := daemon.Query(ctx, daemon.SocketPath(w.agentState), daemon.VerbStatus)
	if err != nil {
		return nil, err
	}
	return r.Status, nil
}

// waitAgent polls the agent's status until ok holds; it fails the test
// after timeout or when the agent exits.
func (w *world) waitAgent(what string, timeout time.Duration, ok func(*daemon.Status) bool) *daemon.Status {
	w.t.Helper()
	var got *daemon.Status
	testwait.For(w.t, timeout, "the agent to be "+what, func() (bool, string) {
		if w.agent.exited() {
			w.t.Fatalf("porthole-agent exited (%v) while waiting for %s\n%s", w.agent.err, what, w.agent.tail(40))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := w.agentStatus(ctx)
		cancel()
		if err != nil {
			return false, fmt.Sprintf("status: %v\n%s\n%s", err, w.agent.tail(40), w.sim.tail(20))
		}
		got = st
		return ok(st), fmt.Sprintf("status %+v\n%s\n%s", st, w.agent.tail(40), w.sim.tail(20))
	})
	return got
}

// stop ends the agent and hubsim with SIGTERM; both must exit with 0.
func (w *world) stop() {
	w.t.Helper()
	if d := w.agent.stop(w.t, true); d > 12*time.Second {
		w.t.Errorf("porthole-agent took %v to stop", d)
	}
	w.sim.stop(w.t, true)
}

// dumpOnFailure logs the processes' last lines when the test failed.
func (w *world) dumpOnFailure(procs ...*proc) {
	w.t.Cleanup(func() {
		if !w.t.Failed() {
			return
		}
		for _, p := range append([]*proc{w.agent, w.sim.proc}, procs...) {
			if p != nil {
				w.t.Log(p.tail(40))
			}
		}
	})
}

func currentUser(t testing.TB) string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if os.Geteuid() == 0 {
		return "root"
	}
	t.Skip("cannot tell the current user name (set USER)")
	return ""
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitBanner waits until addr answers with an SSH banner.
func waitBanner(t testing.TB, p *proc, addr string) {
	t.Helper()
	waitBannerDial(t, p, addr, func(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) })
}

// waitBannerDial is waitBanner dialling with dial (in another network
// namespace, say).
func waitBannerDial(t testing.TB, p *proc, addr string, dial func(addr string) (net.Conn, error)) {
	t.Helper()
	testwait.For(t, startTimeout, p.name+" answering on "+addr, func() (bool, string) {
		if p.exited() {
			t.Fatalf("%s exited: %v\n%s", p.name, p.err, p.tail(30))
		}
		c, err := dial(addr)
		if err != nil {
			return false, err.Error() + "\n" + p.tail(30)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 8)
		n, _ := c.Read(buf)
		return strings.HasPrefix(string(buf[:n]), "SSH-2.0"), p.tail(30)
	})
}
