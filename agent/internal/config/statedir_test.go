package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestStateDirOf(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, yaml, want string
	}{
		{"valid", "state_dir: /var/lib/x\n", "/var/lib/x"},
		{"invalid values elsewhere", "provisioning:\n  id_scop: 1\nstate_dir: /srv/state\n", "/srv/state"},
		{"syntax error", "provisioning:\n  id_scope: [0ne\nstate_dir: \"/srv/broken\" # comment\n", "/srv/broken"},
		{"relative", "state_dir: state\n", filepath.Join(dir, "state")},
		{"absent", "provisioning: {}\n", DefaultStateDir},
		{"nested key is not it", "log:\n  state_dir: /nope\n  [\n", DefaultStateDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "agent.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			if got := StateDirOf(path); got != tt.want {
				t.Errorf("StateDirOf = %q, want %q", got, tt.want)
			}
		})
	}
	if got := StateDirOf(filepath.Join(dir, "missing.yaml")); got != DefaultStateDir {
		t.Errorf("missing file: %q", got)
	}
}
