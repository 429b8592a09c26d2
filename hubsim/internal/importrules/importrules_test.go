package importrules

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/porthole-iot/porthole"

type pkg struct {
	ImportPath string
	Deps       []string
}

// listPackages runs `go list -deps`-style enumeration over the module and
// returns each package with its transitive (non-test) dependencies.
func listPackages(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Deps", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs[p.ImportPath] = p
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}

func under(path, tree string) bool {
	full := module + "/" + tree
	return path == full || strings.HasPrefix(path, full+"/")
}

func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	rules := []struct {
		from, forbidden, why string
	}{
		{"hubsim/internal", "sdk", "the simulator writes its wire strings independently of the SDK"},
		{"sdk", "agent", "the SDK is a library the agent builds on, not the other way round"},
		{"sdk", "hubsim", "the SDK must not depend on the simulator"},
		{"agent", "hubsim", "the agent ships on devices; the simulator is for tests"},
	}
	checked := 0
	for _, p := range pkgs {
		for _, r := range rules {
			if !under(p.ImportPath, r.from) {
				continue
			}
			checked++
			for _, d := range p.Deps {
				if under(d, r.forbidden) {
					t.Errorf("%s imports %s: %s/... must not import %s/... (%s)", p.ImportPath, d, r.from, r.forbidden, r.why)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package fell under any rule; the module layout changed?")
	}
}

func TestAgentBinaryDeps(t *testing.T) {
	pkgs := listPackages(t)
	agent, ok := pkgs[module+"/agent/cmd/porthole-agent"]
	if !ok {
		t.Skip("agent/cmd/porthole-agent does not exist yet")
	}
	forbidden := []string{"testing", "net/http/httptest", "net/http/pprof", module + "/hubsim",
		"github.com/prometheus/client_golang"} // metrics: hubsim only
	for _, d := range agent.Deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("porthole-agent links %s; the device binary must not (forbidden: %s)", d, f)
			}
		}
	}
}
