//go:build !porthole_minimal

package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/porthole-iot/porthole/agent/internal/config"
)

// TestShippedUnitInSync keeps the embedded copy identical to the unit the
// package installs.
func TestShippedUnitInSync(t *testing.T) {
	pkg, err := os.ReadFile(filepath.Join("..", "..", "..", "packaging", "systemd", "porthole-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	if string(pkg) != shippedUnit {
		t.Fatal("agent/cmd/porthole-agent/porthole-agent.service differs from packaging/systemd/porthole-agent.service; copy the packaging one over")
	}
}

// render expands the only template actions systemdTemplate uses, the way
// kardianos/service's engine does (cmdEscape: spaces as \x20; cmd: wrapped
// in double quotes); any other action left over fails the test.
func render(t *testing.T, tmpl, path string, args []string) string {
	t.Helper()
	var a strings.Builder
	for _, s := range args {
		a.WriteString(` "` + strings.ReplaceAll(s, `"`, `\"`) + `"`)
	}
	out := strings.ReplaceAll(tmpl, "{{Path | cmdEscape}}", strings.ReplaceAll(path, " ", `\x20`))
	out = strings.ReplaceAll(out, "{{range Arguments}} {{. | cmd}}{{end}}", a.String())
	if strings.Contains(out, "{{") {
		t.Fatalf("template has other actions:\n%s", out)
	}
	return out
}

// section returns the lines of one [Section] of a unit, comments and blank
// lines left out.
func section(unit, name string) []string {
	var lines []string
	in := false
	for _, l := range strings.Split(unit, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "[") {
			in = l == "["+name+"]"
			continue
		}
		if in && l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestSystemdTemplate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		stateDir string
		logFile  string
		wantRW   string
	}{
		{name: "default paths", stateDir: config.DefaultStateDir, logFile: "/var/log/porthole/agent.log", wantRW: "ReadWritePaths=/var/lib/porthole"},
		{name: "own state and log dirs", stateDir: "/data/porthole", logFile: "/data/log/agent.log", wantRW: "ReadWritePaths=/var/lib/porthole /data/porthole /data/log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{StateDir: tc.stateDir}
			cfg.Log.Destination, cfg.Log.File = config.LogFile, tc.logFile
			tmpl, _, err := systemdTemplate(cfg)
			if err != nil {
				t.Fatal(err)
			}
			unit := render(t, tmpl, "/opt/port hole/porthole-agent", []string{"-config", "/etc/my agent.yaml"})
			const exec = `/opt/port\x20hole/porthole-agent "-config" "/etc/my agent.yaml"`
			got := map[string]bool{}
			for _, l := range section(unit, "Service") {
				got[l] = true
			}
			want := map[string]bool{}
			for _, l := range section(shippedUnit, "Service") {
				switch {
				case strings.HasPrefix(l, "Environment="+configEnv+"="):
					continue // -config replaces it
				case strings.HasPrefix(l, "ExecStart"):
					l = strings.Replace(l, packagedBinary, exec, 1)
				case strings.HasPrefix(l, "ReadWritePaths="):
					l = tc.wantRW
				}
				want[l] = true
			}
			for l := range want {
				if !got[l] {
					t.Errorf("rendered [Service] lacks %q", l)
				}
			}
			for l := range got {
				if !want[l] {
					t.Errorf("rendered [Service] has extra %q", l)
				}
			}
			for _, l := range []string{"ExecStartPre=" + exec + " validate", "ExecStart=" + exec + " run", "ProtectSystem=strict", "CapabilityBoundingSet="} {
				if !got[l] {
					t.Errorf("rendered unit lacks %q:\n%s", l, unit)
				}
			}
			for _, s := range []string{"[Unit]", "[Install]"} {
				if strings.Join(section(unit, s[1:len(s)-1]), "\n") != strings.Join(section(shippedUnit, s[1:len(s)-1]), "\n") {
					t.Errorf("%s differs from the shipped unit", s)
				}
			}
		})
	}
}

func TestSystemdTemplateRefusesOddDirs(t *testing.T) {
	for _, d := range []string{"/data/my state", "/data/100%", `/data/a"b`} {
		if _, _, err := systemdTemplate(&config.Config{StateDir: d}); err == nil {
			t.Errorf("state_dir %q: no error", d)
		}
	}
}

func TestUseShippedUnit(t *testing.T) {
	sc, err := serviceConfig("rel/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state")
	if err := useShippedUnit(sc, &config.Config{StateDir: state}); err != nil {
		t.Fatal(err)
	}
	if len(sc.Arguments) != 2 || sc.Arguments[0] != "-config" || !filepath.IsAbs(sc.Arguments[1]) {
		t.Errorf("arguments %q, want -config FILE", sc.Arguments)
	}
	if s, _ := sc.Option["SystemdScript"].(string); !strings.Contains(s, "ReadWritePaths=/var/lib/porthole "+state+"\n") {
		t.Errorf("SystemdScript:\n%s", s)
	}
	if fi, err := os.Stat(state); err != nil || !fi.IsDir() {
		t.Errorf("state dir not created: %v", err)
	}
}

func TestCheckPackaged(t *testing.T) {
	put := func(t *testing.T, root, dir string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, dir, serviceName+".service"), []byte(shippedUnit), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		dirs    []string
		verb    string
		wantErr string
	}{
		{name: "install, nothing there", verb: "install"},
		{name: "install over /lib unit", dirs: []string{"lib/systemd/system"}, verb: "install", wantErr: "installed from a package; use systemctl enable --now porthole-agent"},
		{name: "install over /usr/lib unit", dirs: []string{"usr/lib/systemd/system"}, verb: "install", wantErr: "installed from a package; use systemctl enable --now porthole-agent"},
		{name: "uninstall package unit", dirs: []string{"lib/systemd/system"}, verb: "uninstall", wantErr: "systemctl disable --now porthole-agent"},
		{name: "uninstall own unit shadowing package", dirs: []string{"lib/systemd/system", "etc/systemd/system"}, verb: "uninstall"},
		{name: "start package unit", dirs: []string{"usr/lib/systemd/system"}, verb: "start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, d := range tc.dirs {
				put(t, root, d)
			}
			err := checkPackaged(tc.verb, root)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), root) {
				t.Fatalf("err = %v, want %q and the unit's path", err, tc.wantErr)
			}
			if tc.verb == "install" && !errors.Is(err, errPackaged) {
				t.Errorf("err = %v, want errPackaged", err)
			}
		})
	}
}
