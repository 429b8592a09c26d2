//go:build !porthole_minimal

package main

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kardianos/service"

	"github.com/porthole-iot/porthole/agent/internal/config"
)

// shippedUnit is a copy of packaging/systemd/porthole-agent.service (the
// hardened unit the .deb installs); TestShippedUnitInSync keeps the two
// identical. On systemd, install writes this unit instead of
// kardianos/service's generic one, so both ways of installing run the
// agent under the same sandbox.
//
//go:embed porthole-agent.service
var shippedUnit string

// systemdPlatform is kardianos/service's name for systemd.
const systemdPlatform = "linux-systemd"

// packagedBinary is where the package puts the agent; the shipped unit's
// Exec lines start with it.
const packagedBinary = "/usr/bin/porthole-agent"

// unitRoot is the file-system root under which the unit directories are
// looked up; tests point it at a temporary directory.
var unitRoot = "/"

// packagedUnitDirs hold a unit installed by a package; localUnitDir holds
// the one install writes (kardianos/service's path for a system unit).
var (
	packagedUnitDirs = []string{"lib/systemd/system", "usr/lib/systemd/system"}
	localUnitDir     = "etc/systemd/system"
)

// errPackaged refuses install (and uninstall) when a package owns the unit.
var errPackaged = errors.New("installed from a package; use systemctl enable --now porthole-agent")

// packagedUnit returns the path of a package-installed unit under root, or
// "" when there is none.
func packagedUnit(root string) string {
	for _, d := range packagedUnitDirs {
		p := filepath.Join(root, d, serviceName+".service")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// checkPackaged refuses install when the package already installed the
// unit (a unit in /etc would shadow it), and uninstall when only the
// package's unit exists (kardianos/service would disable it and then fail
// to remove a file it never wrote).
func checkPackaged(verb, root string) error {
	p := packagedUnit(root)
	if p == "" {
		return nil
	}
	switch verb {
	case "install":
		return fmt.Errorf("%s exists: %w", p, errPackaged)
	case "uninstall":
		if _, err := os.Stat(filepath.Join(root, localUnitDir, serviceName+".service")); err != nil {
			return fmt.Errorf("%s exists: installed from a package; use systemctl disable --now porthole-agent, or remove the package", p)
		}
	}
	return nil
}

// systemdTemplate turns the shipped unit into a kardianos/service
// SystemdScript template (its own small engine: {{Key}}, {{range}}, pipes;
// not text/template). The Exec lines run the installed executable
// ({{Path}}) with the service's Arguments ("-config FILE") before their
// verb; the PORTHOLE_CONFIG line goes, as -config names the file. A
// state_dir or log file outside the shipped writable paths gets its own
// ReadWritePaths line (ProtectSystem=strict makes everything else
// read-only); those directories must then exist, so the caller creates
// them.
func systemdTemplate(cfg *config.Config) (tmpl string, extraDirs []string, err error) {
	if strings.Contains(shippedUnit, "{{") {
		return "", nil, errors.New("shipped unit contains template syntax")
	}
	for _, d := range writableDirs(cfg) {
		if strings.ContainsAny(d, " \t\n\"'\\%") || strings.Contains(d, "{{") || !filepath.IsAbs(d) {
			return "", nil, fmt.Errorf("cannot write a systemd unit for the directory %q (needs an absolute path without spaces, quotes, backslashes or %%)", d)
		}
		extraDirs = append(extraDirs, d)
	}
	const exec = "{{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}"
	var b strings.Builder
	execs := 0
	for _, line := range strings.SplitAfter(shippedUnit, "\n") {
		switch {
		case strings.HasPrefix(line, "Environment="+configEnv+"="):
			continue
		case strings.HasPrefix(line, "Exec") && strings.Contains(line, "="+packagedBinary+" "):
			line = strings.Replace(line, "="+packagedBinary+" ", "="+exec+" ", 1)
			execs++
		case strings.HasPrefix(line, "ReadWritePaths=") && len(extraDirs) > 0:
			line = strings.TrimSuffix(line, "\n") + " " + strings.Join(extraDirs, " ") + "\n"
		}
		b.WriteString(line)
	}
	if execs != 2 || strings.Contains(b.String(), packagedBinary) {
		return "", nil, fmt.Errorf("shipped unit: found %d Exec lines running %s, want 2", execs, packagedBinary)
	}
	return b.String(), extraDirs, nil
}

// writableDirs lists the directories the agent writes that the shipped
// unit does not already make writable.
func writableDirs(cfg *config.Config) []string {
	var dirs []string
	if sd := filepath.Clean(cfg.StateDir); sd != config.DefaultStateDir {
		dirs = append(dirs, sd)
	}
	if cfg.Log.Destination == config.LogFile && cfg.Log.File != "" {
		if d := filepath.Dir(filepath.Clean(cfg.Log.File)); d != "/var/log/porthole" && !strings.HasPrefix(d, "/var/log/porthole/") {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// useShippedUnit makes sc write the shipped unit when installing under
// systemd. Arguments become just "-config FILE": the template appends
// each Exec line's verb.
func useShippedUnit(sc *service.Config, cfg *config.Config) error {
	tmpl, dirs, err := systemdTemplate(cfg)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("install: %w", err)
		}
	}
	sc.Arguments = sc.Arguments[:2]
	if sc.Option == nil {
		sc.Option = service.KeyValue{}
	}
	sc.Option["SystemdScript"] = tmpl
	return nil
}

// onSystemd reports whether kardianos/service drives systemd here.
func onSystemd() bool {
	sys := service.ChosenSystem()
	return sys != nil && sys.String() == systemdPlatform
}
