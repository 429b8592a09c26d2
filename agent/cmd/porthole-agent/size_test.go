package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoYAMLEncoder guards the largest cut in SIZE.md: the agent only
// decodes YAML (config.Redacted writes its YAML by hand), so yaml.v3's
// emitter must not be linked. A call to yaml.Marshal, yaml.NewEncoder or
// Node.Encode anywhere in the agent brings it back (about 0.1 MB on mipsle).
func TestNoYAMLEncoder(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent")
	}
	bin := filepath.Join(t.TempDir(), "porthole-agent")
	if out, err := exec.Command("go", "build", "-trimpath", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command("go", "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	syms := string(out)
	if !strings.Contains(syms, "yaml%2ev3.yaml_parser_parse") {
		t.Fatal("no yaml.v3 parser symbols: the check below would prove nothing")
	}
	for _, bad := range []string{"yaml%2ev3.yaml_emitter_emit", "yaml%2ev3.(*encoder)"} {
		if strings.Contains(syms, bad) {
			t.Errorf("porthole-agent links %s (yaml.v3's encoder)", bad)
		}
	}
}
