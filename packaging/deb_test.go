package packaging

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	unitPath   = "usr/lib/systemd/system/porthole-agent.service"
	sysvPath   = "etc/init.d/porthole-agent"
	configPath = "etc/porthole/agent.yaml"
	binPath    = "usr/bin/porthole-agent"
	stateDir   = "var/lib/porthole"
)

// configure makes the installed config count as edited: a real ID scope
// and key instead of the sample's placeholders.
func configure(t *testing.T, root string) {
	t.Helper()
	p := filepath.Join(root, configPath)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(configured(t, string(b))), 0o600); err != nil {
		t.Fatal(err)
	}
}

// placeholderKey is the sample configs' symmetric key, base64 of
// "REPLACE-ME-WITH-THE-DEVICE-KEY!!"; postinst looks for it.
const placeholderKey = "UkVQTEFDRS1NRS1XSVRILVRIRS1ERVZJQ0UtS0VZISE="

// configured returns a sample config with its placeholders filled in.
func configured(t testing.TB, sample string) string {
	t.Helper()
	edited := strings.Replace(sample, "0ne00012345", "0ne000ABCDE", 1)
	edited = strings.Replace(edited, placeholderKey, "c2VjcmV0LWtleS1mb3ItdGhlLXRlc3QtZGV2aWNlMDE=", 1)
	if strings.Contains(edited, "0ne00012345") || strings.Contains(edited, placeholderKey) || edited == sample {
		t.Fatal("the sample config no longer has the placeholders (ID scope 0ne00012345, key " + placeholderKey + ") that postinst looks for")
	}
	return edited + "# edited on the device\n"
}

// dpkgStatus returns the Status and Conffiles of porthole-agent in root's
// dpkg database ("" when it is not listed).
func dpkgStatus(t *testing.T, root string) (status string, conffiles []string) {
	t.Helper()
	db := readFile(t, root, "var/lib/dpkg/status")
	for _, para := range strings.Split(db, "\n\n") {
		if !strings.Contains(para, "Package: porthole-agent\n") {
			continue
		}
		in := false
		for _, line := range strings.Split(para, "\n") {
			switch {
			case strings.HasPrefix(line, "Status: "):
				status = strings.TrimPrefix(line, "Status: ")
				in = false
			case line == "Conffiles:":
				in = true
			case in && strings.HasPrefix(line, " "):
				conffiles = append(conffiles, strings.Fields(line)[0])
			default:
				in = false
			}
		}
	}
	return status, conffiles
}

// TestDebLifecycle installs the amd64 .deb into a throw-away root with dpkg
// --root (maintainer scripts run chrooted under BusyBox sh), edits the
// config, upgrades, removes and purges, for each init system the scripts
// know; fake systemctl / update-rc.d / invoke-rc.d record what the scripts
// ask of them.
func TestDebLifecycle(t *testing.T) {
	dpkg := needTool(t, "dpkg", "dpkg")
	v1 := buildPackage(t, "deb", "amd64", "v1.0.0")
	v2 := buildPackage(t, "deb", "amd64", "v1.0.1")

	type step struct {
		install, upgrade, remove, purge []string
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
		want  step
		note  string // expected in the install output
	}{{
		name: "no-init",
		want: step{},
		note: "no init system found",
	}, {
		// The sample config has placeholders: the first install leaves the
		// service disabled; the upgrade after the admin filled it in
		// restarts it only if it runs and never enables it.
		name: "systemd",
		setup: func(t *testing.T, root string) {
			fakeTool(t, root, "usr/bin/systemctl")
			os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755)
			os.MkdirAll(filepath.Join(root, "etc/systemd/system"), 0o755)
		},
		want: step{
			install: []string{"systemctl daemon-reload"},
			upgrade: []string{"systemctl daemon-reload", "systemctl try-restart porthole-agent.service"},
			remove:  []string{"systemctl is-enabled --quiet porthole-agent.service", "systemctl stop porthole-agent.service", "systemctl disable porthole-agent.service", "systemctl daemon-reload"},
		},
		note: "the service is left disabled: edit /etc/porthole/agent.yaml",
	}, {
		// An image build or chroot: systemd installed but not running.
		name: "systemd-offline",
		setup: func(t *testing.T, root string) {
			fakeTool(t, root, "usr/bin/systemctl")
			os.MkdirAll(filepath.Join(root, "etc/systemd/system"), 0o755)
		},
		want: step{
			remove: []string{"systemctl is-enabled --quiet porthole-agent.service", "systemctl disable porthole-agent.service"},
		},
		note: "then run: systemctl enable --now porthole-agent",
	}, {
		name: "sysv",
		setup: func(t *testing.T, root string) {
			fakeTool(t, root, "usr/sbin/update-rc.d")
			fakeTool(t, root, "usr/sbin/invoke-rc.d")
		},
		want: step{
			upgrade: []string{"invoke-rc.d porthole-agent status", "invoke-rc.d porthole-agent restart"},
			remove:  []string{"invoke-rc.d porthole-agent stop"},
			purge:   []string{"update-rc.d porthole-agent remove"},
		},
		note: "then run: update-rc.d porthole-agent defaults",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newRoot(t)
			if tt.setup != nil {
				tt.setup(t, root)
			}
			dpkgIn := func(args ...string) string {
				t.Helper()
				return run(t, nil, dpkg, append([]string{"--root=" + root, "--log=/dev/null"}, args...)...)
			}
			checkCalls := func(phase string, want []string) {
				t.Helper()
				if got := takeCalls(t, root); !slices.Equal(got, want) {
					t.Errorf("%s: init calls %q, want %q", phase, got, want)
				}
			}

			// Fresh install: sample config, so neither enabled nor started.
			out := dpkgIn("-i", v1)
			if !strings.Contains(out, tt.note) {
				t.Errorf("install output lacks %q:\n%s", tt.note, out)
			}
			checkCalls("install", tt.want.install)
			wantMode(t, root, binPath, 0o755)
			wantMode(t, root, configPath, 0o600)
			wantMode(t, root, unitPath, 0o644)
			wantMode(t, root, sysvPath, 0o755)
			wantMode(t, root, stateDir, fs.ModeDir|0o700)
			wantMode(t, root, "etc/porthole", fs.ModeDir|0o755)
			status, conf := dpkgStatus(t, root)
			if status != "install ok installed" {
				t.Errorf("status after install %q", status)
			}
			slices.Sort(conf)
			if want := []string{"/etc/init.d/porthole-agent", "/etc/porthole/agent.yaml"}; !slices.Equal(conf, want) {
				t.Errorf("conffiles %q, want %q", conf, want)
			}
			if db := readFile(t, root, "var/lib/dpkg/status"); !strings.Contains(db, "Recommends: ca-certificates\n") {
				t.Errorf("the package does not recommend ca-certificates:\n%s", db)
			}
			if got := readFile(t, root, configPath); got != readFile(t, repoRoot(t), "configs/agent.yaml") {
				t.Error("installed agent.yaml is not configs/agent.yaml")
			}

			// The operator edits the config; an upgrade keeps it (no prompt:
			// stdin is /dev/null) and restarts the service.
			configure(t, root)
			edited := readFile(t, root, configPath)
			os.WriteFile(filepath.Join(root, stateDir, "state.json"), []byte("{}"), 0o600)
			dpkgIn("-i", v2)
			checkCalls("upgrade", tt.want.upgrade)
			if got := readFile(t, root, configPath); got != edited {
				t.Errorf("upgrade replaced the edited config:\n%s", got)
			}
			wantMode(t, root, configPath, 0o600)
			if _, err := os.Stat(filepath.Join(root, configPath+".dpkg-new")); err == nil {
				t.Error("upgrade left agent.yaml.dpkg-new for an unchanged conffile")
			}
			if db := readFile(t, root, "var/lib/dpkg/status"); !strings.Contains(db, "Version: 1.0.1\n") {
				t.Errorf("version after upgrade: %s", db)
			}

			// Remove: program files go, conffiles and state stay.
			dpkgIn("-r", "porthole-agent")
			checkCalls("remove", tt.want.remove)
			wantGone(t, root, binPath, unitPath)
			if got := readFile(t, root, configPath); got != edited {
				t.Error("remove lost the edited config")
			}
			wantMode(t, root, filepath.Join(stateDir, "state.json"), 0o600)
			if status, _ := dpkgStatus(t, root); status != "deinstall ok config-files" {
				t.Errorf("status after remove %q", status)
			}

			// Purge: config, SysV script and state go too.
			dpkgIn("-P", "porthole-agent")
			checkCalls("purge", tt.want.purge)
			wantGone(t, root, configPath, sysvPath, stateDir, "etc/porthole")
			if status, _ := dpkgStatus(t, root); status != "" {
				t.Errorf("status after purge %q", status)
			}
		})
	}
}

// TestDebChangedConffileKeptWithConfold: when both the operator and the new
// package change agent.yaml, the non-interactive upgrade used by fleets
// (--force-confdef --force-confold) keeps the operator's file and leaves the
// new one beside it.
func TestDebChangedConffileKeptWithConfold(t *testing.T) {
	dpkg := needTool(t, "dpkg", "dpkg")
	v1 := buildPackage(t, "deb", "amd64", "v1.0.0")
	root := newRoot(t)
	run(t, nil, dpkg, "--root="+root, "--log=/dev/null", "-i", v1)
	configure(t, root)
	edited := readFile(t, root, configPath)

	// A v2 whose shipped agent.yaml differs: repack v1 with dpkg-deb.
	needTool(t, "dpkg-deb", "dpkg")
	x := filepath.Join(t.TempDir(), "x")
	run(t, nil, "dpkg-deb", "-R", v1, x)
	ctl := readFile(t, x, "DEBIAN/control")
	writeFile(t, x, "DEBIAN/control", strings.Replace(ctl, "Version: 1.0.0", "Version: 1.0.2", 1), 0o644)
	writeFile(t, x, configPath, readFile(t, x, configPath)+"# new upstream comment\n", 0o600)
	md5 := readFile(t, x, "DEBIAN/md5sums")
	var kept []string
	for _, l := range strings.Split(strings.TrimSpace(md5), "\n") {
		if !strings.HasSuffix(l, configPath) {
			kept = append(kept, l)
		}
	}
	writeFile(t, x, "DEBIAN/md5sums", strings.Join(kept, "\n")+"\n", 0o644)
	v2 := filepath.Join(t.TempDir(), "v2.deb")
	run(t, nil, "dpkg-deb", "--root-owner-group", "-b", x, v2)

	run(t, nil, dpkg, "--root="+root, "--log=/dev/null", "--force-confdef", "--force-confold", "-i", v2)
	if got := readFile(t, root, configPath); got != edited {
		t.Errorf("confold upgrade replaced the edited config:\n%s", got)
	}
	if got := readFile(t, root, configPath+".dpkg-dist"); !strings.Contains(got, "# new upstream comment") {
		t.Errorf("new upstream config not left as .dpkg-dist: %q", got)
	}
}

// TestDebEnablesOnlyOnFirstInstall: with a usable config already in place
// (an image or fleet tool seeds agent.yaml before installing), the first
// install enables and starts the service; an upgrade only restarts it, so
// an admin's `systemctl disable` survives; remove drops the first-install
// marker only when the service was enabled, so a reinstall enables it again
// and a disabled service stays disabled. A config that fails `validate`
// keeps the service disabled even without placeholders.
func TestDebEnablesOnlyOnFirstInstall(t *testing.T) {
	dpkg := needTool(t, "dpkg", "dpkg")
	v1 := buildPackage(t, "deb", "amd64", "v1.0.0")
	v2 := buildPackage(t, "deb", "amd64", "v1.0.1")
	sample := readFile(t, repoRoot(t), "configs/agent.yaml")
	mark := filepath.Join(stateDir, ".package-installed")

	tests := []struct {
		name      string
		config    string
		isEnabled int // exit status of `systemctl is-enabled` at removal
		install   []string
		reinstall []string
	}{{
		name:      "enabled-stays-enabled",
		config:    configured(t, sample),
		isEnabled: 0,
		install:   []string{"systemctl daemon-reload", "systemctl enable porthole-agent.service", "systemctl start porthole-agent.service"},
		reinstall: []string{"systemctl daemon-reload", "systemctl enable porthole-agent.service", "systemctl start porthole-agent.service"},
	}, {
		name:      "disabled-stays-disabled",
		config:    configured(t, sample),
		isEnabled: 1,
		install:   []string{"systemctl daemon-reload", "systemctl enable porthole-agent.service", "systemctl start porthole-agent.service"},
		reinstall: []string{"systemctl daemon-reload", "systemctl try-restart porthole-agent.service"},
	}, {
		name:      "invalid-config",
		config:    strings.Replace(configured(t, sample), "registration_id: gateway-0001", "registration_id: \"\"", 1),
		isEnabled: 1,
		install:   []string{"systemctl daemon-reload"},
		reinstall: []string{"systemctl daemon-reload", "systemctl try-restart porthole-agent.service"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newRoot(t)
			// systemctl records its call; is-enabled answers as the test says.
			writeFile(t, root, "usr/bin/systemctl", fmt.Sprintf("#!/bin/sh\necho \"${0##*/} $*\" >>/%s\n[ \"$1\" = is-enabled ] && exit %d\nexit 0\n", callLog, tt.isEnabled), 0o755)
			os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755)
			os.MkdirAll(filepath.Join(root, "etc/systemd/system"), 0o755)
			writeFile(t, root, configPath, tt.config, 0o600)
			dpkgIn := func(args ...string) string {
				t.Helper()
				return run(t, nil, dpkg, append([]string{"--root=" + root, "--log=/dev/null", "--force-confold"}, args...)...)
			}
			calls := func(phase string, want []string) {
				t.Helper()
				if got := takeCalls(t, root); !slices.Equal(got, want) {
					t.Errorf("%s: init calls %q, want %q", phase, got, want)
				}
			}

			dpkgIn("-i", v1)
			calls("first install", tt.install)
			if got := readFile(t, root, configPath); got != tt.config {
				t.Error("install replaced the seeded config")
			}
			wantMode(t, root, mark, 0o644)

			// Upgrade: whatever the admin chose since, nothing is enabled.
			dpkgIn("-i", v2)
			calls("upgrade", []string{"systemctl daemon-reload", "systemctl try-restart porthole-agent.service"})

			dpkgIn("-r", "porthole-agent")
			calls("remove", []string{"systemctl is-enabled --quiet porthole-agent.service", "systemctl stop porthole-agent.service", "systemctl disable porthole-agent.service", "systemctl daemon-reload"})
			dpkgIn("-i", v2)
			calls("reinstall", tt.reinstall)
		})
	}
}
