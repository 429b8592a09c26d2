package config

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestSamplePlaceholders pins the placeholder values against the sample
// files shipped in the packages, and checks SampleValues finds both in
// each, on the right line.
func TestSamplePlaceholders(t *testing.T) {
	for _, sample := range []string{"configs/agent.yaml", "configs/agent.full.yaml", "firmware/openwrt/files/agent.yaml"} {
		t.Run(sample, func(t *testing.T) {
			path := filepath.Join("..", "..", "..", filepath.FromSlash(sample))
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			c, _, err := Parse(sample, data)
			if err != nil {
				t.Fatalf("the sample does not parse: %v", err)
			}
			got := c.SampleValues()
			want := map[string]string{
				"provisioning.id_scope":                  "id_scope: " + SampleIDScope,
				"provisioning.attestation.symmetric_key": "symmetric_key: " + SampleSymmetricKey,
			}
			if len(got) != len(want) {
				t.Fatalf("SampleValues = %v, want %d problems", got, len(want))
			}
			lines := strings.Split(string(data), "\n")
			for _, fe := range got {
				text, ok := want[fe.Field]
				if !ok {
					t.Errorf("unexpected problem %v", fe)
					continue
				}
				if fe.Line < 1 || !strings.Contains(lines[fe.Line-1], text) {
					t.Errorf("%s: line %d does not hold %q", fe.Field, fe.Line, text)
				}
			}
		})
	}
}

func TestSampleValuesAcceptsRealValues(t *testing.T) {
	c, _, err := Parse("a.yaml", []byte("provisioning:\n  id_scope: 0ne0009F00D\n  registration_id: dev1\n  attestation:\n    symmetric_key: c2VjcmV0LWtleS1vZi1kZXYx\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.SampleValues(); len(got) != 0 {
		t.Errorf("SampleValues = %v, want none", got)
	}
}

func TestFileModeProblem(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes do not apply on Windows")
	}
	tests := []struct {
		mode os.FileMode
		want string // "" for no problem
	}{
		{0o600, ""},
		{0o644, ""},
		{0o640, ""},
		{0o620, "its group can write to it (mode 0620)"},
		{0o666, "other users can write to it (mode 0666)"},
		{0o602, "other users can write to it (mode 0602)"},
	}
	for _, tt := range tests {
		path := filepath.Join(t.TempDir(), "agent.yaml")
		if err := os.WriteFile(path, []byte("x: 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tt.mode); err != nil {
			t.Fatal(err)
		}
		fe := FileModeProblem(path)
		switch {
		case tt.want == "" && fe != nil:
			t.Errorf("mode %04o: %v, want no problem", tt.mode, fe)
		case tt.want != "" && (fe == nil || fe.Problem != tt.want):
			t.Errorf("mode %04o: %v, want %q", tt.mode, fe, tt.want)
		}
	}
}

func TestLoadMissingNamesTheSample(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.yaml")
	_, _, err := Load(path)
	if !errors.Is(err, ErrMissing) {
		t.Fatalf("err = %v, want ErrMissing", err)
	}
	for _, want := range []string{path, "does not exist", SamplePath, "configs/agent.yaml"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}
