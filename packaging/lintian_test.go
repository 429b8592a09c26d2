package packaging

import (
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDebLintian runs lintian on the amd64 .deb: no error and no warning
// may be left, and every override in packaging/debian/lintian-overrides must
// still match something (an unused override hides nothing and would hide a
// future problem). lintian's informational tags are printed, not judged.
func TestDebLintian(t *testing.T) {
	lintian := needTool(t, "lintian", "lintian")
	deb := buildPackage(t, "deb", "amd64", "v1.0.0")
	cmd := exec.Command(lintian, "--display-info", "--pedantic", "--fail-on", "error,warning", deb)
	out, err := cmd.CombinedOutput()
	t.Logf("lintian:\n%s", out)
	if err != nil {
		t.Errorf("lintian failed: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "E: "), strings.HasPrefix(line, "W: "):
			t.Errorf("lintian: %s", line)
		case strings.Contains(line, "unused-override"), strings.Contains(line, "mismatched-override"):
			t.Errorf("lintian: stale override: %s", line)
		}
	}
}

// TestDebDocs: the .deb carries the Debian copyright file (machine-readable,
// naming the project's license and each linked module's), a gzip -9n
// changelog whose top entry is the package's version, and the man page.
func TestDebDocs(t *testing.T) {
	needTool(t, "dpkg-deb", "dpkg")
	deb := buildPackage(t, "deb", "amd64", "v1.2.3")
	x := t.TempDir()
	run(t, nil, "dpkg-deb", "-x", deb, x)
	doc := "usr/share/doc/porthole-agent/"

	copyright := readFile(t, x, doc+"copyright")
	for _, want := range []string{
		"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
		"Files: *\nCopyright: 2026 The porthole authors\nLicense: Apache-2.0\n",
		"/usr/share/common-licenses/Apache-2.0",
		"github.com/gorilla/websocket", "github.com/eclipse/paho.mqtt.golang", "gopkg.in/yaml.v3",
		"github.com/cenkalti/backoff", "github.com/kardianos/service", "golang.org/x/net",
	} {
		if !strings.Contains(copyright, want) {
			t.Errorf("copyright lacks %q", want)
		}
	}
	// The root LICENSE is the Apache-2.0 text Debian ships.
	if lic, err := os.ReadFile("/usr/share/common-licenses/Apache-2.0"); err == nil {
		if got := readFile(t, repoRoot(t), "LICENSE"); got != string(lic) {
			t.Error("LICENSE differs from the Apache-2.0 text in /usr/share/common-licenses")
		}
	}

	for name, want := range map[string]string{
		doc + "changelog.gz":                     "porthole-agent (1.2.3) unstable; urgency=medium",
		"usr/share/man/man1/porthole-agent.1.gz": ".TH PORTHOLE-AGENT 1",
	} {
		f, err := os.Open(filepath.Join(x, name))
		if err != nil {
			t.Error(err)
			continue
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			f.Close()
			continue
		}
		if zr.Header.Name != "" || !zr.Header.ModTime.IsZero() {
			t.Errorf("%s: gzip header carries name %q / time %v (want gzip -9n)", name, zr.Header.Name, zr.Header.ModTime)
		}
		b, err := io.ReadAll(zr)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !strings.HasPrefix(string(b), want) {
			t.Errorf("%s starts %q, want %q", name, firstLine(string(b)), want)
		}
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
