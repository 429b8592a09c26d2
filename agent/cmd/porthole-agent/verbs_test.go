package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/porthole-iot/porthole/agent/internal/config"
)

// TestVerbHelp: every verb's -h says what it does, lists its flags and
// exits 0.
func TestVerbHelp(t *testing.T) {
	for verb, flags := range map[string][]string{
		"run":         {"-config", "-lookup-first"},
		"validate":    {"-config"},
		"doctor":      {"-config", "-skip-lookup"},
		"status":      {"-config", "-json"},
		"metrics":     {"-config"},
		"reprovision": {"-config", "-json"},
		"install":     {"-config"},
		"uninstall":   {"-config"},
		"start":       {"-config"},
		"stop":        {"-config"},
		"version":     {"-config"},
	} {
		for _, h := range []string{"-h", "-help", "--help"} {
			var out bytes.Buffer
			if err := run(context.Background(), []string{verb, h}, &out, &bytes.Buffer{}); err != nil {
				t.Errorf("%s %s: %v", verb, h, err)
				continue
			}
			if !strings.Contains(out.String(), "usage: porthole-agent [-config FILE] "+verb) || !strings.Contains(out.String(), verbHelp[verb]) {
				t.Errorf("%s %s: no usage line or description:\n%s", verb, h, out.String())
			}
			for _, f := range flags {
				if !strings.Contains(out.String(), "  "+f) {
					t.Errorf("%s %s does not list %s:\n%s", verb, h, f, out.String())
				}
			}
		}
	}
}

// TestValidateVerdict: validate prints every problem, one a line, and a
// verdict line; it refuses the sample's placeholders and a config other
// users can write to; a missing config names the sample to copy.
func TestValidateVerdict(t *testing.T) {
	good, _ := writeConfig(t, "")
	sample, err := os.ReadFile(filepath.Join("..", "..", "..", "configs", "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	placeholders := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(placeholders, sample, 0o600); err != nil {
		t.Fatal(err)
	}
	writable := filepath.Join(t.TempDir(), "agent.yaml")
	data, _ := os.ReadFile(placeholders)
	if err := os.WriteFile(writable, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(writable, 0o666); err != nil {
		t.Fatal(err)
	}
	lineOf := func(text string) string {
		for i, l := range strings.Split(string(sample), "\n") {
			if strings.Contains(l, text) {
				return strconv.Itoa(i + 1)
			}
		}
		t.Fatalf("the sample has no %q", text)
		return ""
	}
	scopeLine, keyLine := lineOf("id_scope: "+config.SampleIDScope), lineOf("symmetric_key: "+config.SampleSymmetricKey)
	syntax := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(syntax, []byte("provisioning:\n  id_scope: x\n  bad: [1, 2\nstreams:\n  x: y\n"), 0o600)
	missing := filepath.Join(t.TempDir(), "agent.yaml")

	for _, tc := range []struct {
		name string
		path string
		want []string // lines of stdout, in order
	}{
		{"good", good, []string{good + ": OK"}},
		{"sample placeholders", placeholders, []string{
			placeholders + ":" + scopeLine + `: provisioning.id_scope: "0ne00012345" is the sample's placeholder; expected the ID scope from the DPS overview page`,
			placeholders + ":" + keyLine + ": provisioning.attestation.symmetric_key: is the sample's placeholder key; expected the enrollment's key (or a per-device key derived from the group key)",
			"2 problems"}},
		{"world-writable", writable, []string{
			writable + ": other users can write to it (mode 0666); expected chmod 600 (only the agent's user may change what the agent connects to)",
			writable + ":" + scopeLine + `: provisioning.id_scope: "0ne00012345" is the sample's placeholder; expected the ID scope from the DPS overview page`,
			writable + ":" + keyLine + ": provisioning.attestation.symmetric_key: is the sample's placeholder key; expected the enrollment's key (or a per-device key derived from the group key)",
			"3 problems"}},
		{"syntax error", syntax, []string{
			syntax + ":3: syntax error: did not find expected ',' or ']'; expected valid YAML (check indentation and quoting)",
			"1 problem"}},
		{"missing", missing, []string{
			"config: " + missing + ": the config file does not exist (no such file or directory); copy the sample " + config.SamplePath + " (configs/agent.yaml in the source) there and fill in the device's values",
			"1 problem"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), []string{"-config", tc.path, "validate"}, &out, &bytes.Buffer{})
			if got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("stdout:\n%s\nwant:\n%s", out.String(), strings.Join(tc.want, "\n"))
			}
			var ee *exitError
			if ok := errors.As(err, &ee) && ee.code == 1; ok != (len(tc.want) > 1) {
				t.Errorf("err %v", err)
			}
		})
	}
}

// TestStatusStoppedAgentBrokenConfig: with no agent running and a config
// that does not load, status says how to start the agent, shows the
// config error on its own line and exits 3 (LSB's "not running"); -json
// says the same.
func TestStatusStoppedAgentBrokenConfig(t *testing.T) {
	path, _ := writeConfig(t, "")
	data, _ := os.ReadFile(path)
	os.WriteFile(path, append(data, []byte("hub:\n  colour: blue\n")...), 0o600)

	var out bytes.Buffer
	err := run(context.Background(), []string{"-config", path, "status"}, &out, &bytes.Buffer{})
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitNotRunning {
		t.Fatalf("err %v, want exit %d", err, exitNotRunning)
	}
	want := "agent         not running; start it with " + startCommand(path) + "\n" +
		"config error  " + path + ":9: hub.colour: unknown key; expected one of transport, keepalive, "
	if !strings.HasPrefix(out.String(), want) || strings.Count(out.String(), "\n") != 2 {
		t.Errorf("stdout:\n%s\nwant:\n%s", out.String(), want)
	}

	out.Reset()
	run(context.Background(), []string{"-config", path, "status", "-json"}, &out, &bytes.Buffer{})
	var js map[string]any
	if err := json.Unmarshal(out.Bytes(), &js); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if js["running"] != false || !strings.Contains(js["configError"].(string), "hub.colour: unknown key") {
		t.Errorf("status -json: %s", out.String())
	}
}

// TestMetricsVerbNotRunning: with no agent, metrics prints valid
// Prometheus text saying porthole_agent_up 0, and exits 3 like status.
func TestMetricsVerbNotRunning(t *testing.T) {
	path, _ := writeConfig(t, "")
	var out bytes.Buffer
	err := run(context.Background(), []string{"-config", path, "metrics"}, &out, &bytes.Buffer{})
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitNotRunning {
		t.Fatalf("err %v, want exit %d", err, exitNotRunning)
	}
	fams := parseProm(t, out.Bytes())
	if up := fams["porthole_agent_up"]; up == nil || up.GetMetric()[0].GetGauge().GetValue() != 0 {
		t.Errorf("porthole_agent_up: %v\n%s", up, out.String())
	}
	if _, ok := fams["porthole_agent_build_info"]; !ok {
		t.Errorf("no build info:\n%s", out.String())
	}
}

// parseProm parses Prometheus text with Prometheus's own parser.
func parseProm(t *testing.T, data []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not Prometheus text: %v\n%s", err, data)
	}
	return fams
}
