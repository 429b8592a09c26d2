package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFleetPlanCommand(t *testing.T) {
	dir := t.TempDir()
	plan := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(plan, []byte("scenarios:\n- {name: cached, event: boot, devices: 100}\n- {name: lookup, event: boot, lookup_first: true, devices: 100}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		want     []string // in stdout
		wantErr  bool
		wantFile bool
	}{
		{"default plan, small", []string{"plan", "-devices", "200", "-no-plots", "-out", filepath.Join(dir, "a")}, []string{"all-at-once", "staged", "peak admitted/min"}, false, true},
		{"one scenario from flags", []string{"plan", "-event", "reprovision", "-devices", "200", "-waves", "50/1m", "-quota-change", "1m=600", "-quota", "120", "-no-plots", "-out", filepath.Join(dir, "b")}, []string{"waves of 50 every 1m0s", "120/min → 600 at 1m0s"}, false, true},
		{"plan file", []string{"plan", "-plan", plan, "-no-plots", "-out", filepath.Join(dir, "c")}, []string{"cached", "lookup first"}, false, true},
		{"bad waves", []string{"plan", "-event", "reprovision", "-waves", "many"}, nil, true, false},
		{"plan and event", []string{"plan", "-plan", plan, "-event", "boot"}, nil, true, false},
		{"waves without event", []string{"plan", "-waves", "10/1m"}, nil, true, false},
		{"no subcommand", []string{}, nil, true, false},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		err := run(t.Context(), append([]string{"fleet"}, tt.args...), &out, &errOut)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: %v (stderr %s)", tt.name, err, errOut.String())
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: output lacks %q:\n%s", tt.name, w, out.String())
			}
		}
		if tt.wantFile {
			outDir := tt.args[len(tt.args)-1]
			b, err := os.ReadFile(filepath.Join(outDir, "fleet-plan.csv"))
			if err != nil || !bytes.HasPrefix(b, []byte("scenario,event,devices")) {
				t.Errorf("%s: csv %q %v", tt.name, b, err)
			}
		}
		if tt.wantErr && errors.Is(err, errUsage) && errOut.Len() == 0 {
			t.Errorf("%s: usage error without a message", tt.name)
		}
	}
}
