package packaging

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// unitDirectives parses a systemd unit into section -> key -> values.
func unitDirectives(s string) map[string]map[string][]string {
	out := map[string]map[string][]string{}
	sec := ""
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			sec = line[1 : len(line)-1]
			if out[sec] == nil {
				out[sec] = map[string][]string{}
			}
		default:
			if k, v, ok := strings.Cut(line, "="); ok && sec != "" {
				out[sec][k] = append(out[sec][k], v)
			}
		}
	}
	return out
}

// TestSystemdUnitHardening pins the service settings the agent relies on
// and the hardening the packaging promises.
func TestSystemdUnitHardening(t *testing.T) {
	u := unitDirectives(readFile(t, repoRoot(t), "packaging/systemd/porthole-agent.service"))
	want := []struct{ sec, key, val string }{
		{"Service", "ExecStart", "/usr/bin/porthole-agent run"},
		{"Service", "Environment", "PORTHOLE_CONFIG=/etc/porthole/agent.yaml"},
		{"Service", "ExecReload", "/bin/kill -HUP $MAINPID"},
		{"Service", "Restart", "always"},
		{"Service", "NoNewPrivileges", "yes"},
		{"Service", "ProtectSystem", "strict"},
		{"Service", "ProtectHome", "yes"},
		{"Service", "PrivateTmp", "yes"},
		{"Service", "StateDirectory", "porthole"},
		{"Service", "StateDirectoryMode", "0700"},
		{"Service", "ReadWritePaths", "/var/lib/porthole"},
		{"Service", "CapabilityBoundingSet", ""},
		{"Install", "WantedBy", "multi-user.target"},
		{"Unit", "After", "network-online.target time-sync.target"},
	}
	for _, w := range want {
		got := u[w.sec][w.key]
		if len(got) != 1 || got[0] != w.val {
			t.Errorf("[%s] %s = %q, want %q", w.sec, w.key, got, w.val)
		}
	}
	// Go raises RLIMIT_NOFILE at start: a filter denying @resources without
	// an errno would kill it with SIGSYS.
	for _, f := range u["Service"]["SystemCallFilter"] {
		if strings.Contains(f, "@resources") {
			t.Errorf("SystemCallFilter=%s denies setrlimit, which the Go runtime calls", f)
		}
	}
}

// TestUnitVerifies runs systemd-analyze verify on the unit when systemd is
// installed (it checks every directive name and value).
func TestUnitVerifies(t *testing.T) {
	sa := needTool(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	unit := filepath.Join(dir, "porthole-agent.service")
	// The binary is not installed here: point ExecStart/ExecStartPre at one that is.
	s := strings.ReplaceAll(readFile(t, repoRoot(t), "packaging/systemd/porthole-agent.service"), "/usr/bin/porthole-agent", "/bin/true")
	writeFile(t, dir, "porthole-agent.service", s, 0o644)
	out, err := runErr(nil, sa, "verify", "--man=no", unit)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestShellScriptsParse runs sh -n (and busybox sh -n when a static busybox
// is at hand) on every shell script the packages and firmware ship.
func TestShellScriptsParse(t *testing.T) {
	sh := needTool(t, "sh", "dash")
	root := repoRoot(t)
	scripts := []string{
		"packaging/scripts/postinst", "packaging/scripts/prerm", "packaging/scripts/postrm",
		"packaging/scripts/package.sh", "packaging/scripts/overlay.sh", "packaging/scripts/sizes.sh",
		"packaging/sysv/porthole-agent", "firmware/openwrt/files/porthole-agent.init",
		"firmware/buildroot/S95porthole-agent", "firmware/rootfs-overlay/S95porthole-agent",
		"firmware/yocto/files/porthole-agent.init", "firmware/openwrt/mirror-hash.sh", "firmware/yocto/go-mods.sh",
	}
	for _, s := range scripts {
		p := filepath.Join(root, s)
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if fi.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable", s)
		}
		if out, err := runErr(nil, sh, "-n", p); err != nil {
			t.Errorf("sh -n %s: %v\n%s", s, err, out)
		}
		if bb := os.Getenv("PORTHOLE_BUSYBOX_STATIC"); bb != "" {
			if out, err := runErr(nil, bb, "sh", "-n", p); err != nil {
				t.Errorf("busybox sh -n %s: %v\n%s", s, err, out)
			}
		}
	}
	if out, err := runErr(nil, "bash", "-n", filepath.Join(root, "packaging/scripts/test-cross.sh")); err != nil {
		t.Errorf("bash -n test-cross.sh: %v\n%s", err, out)
	}
}

// TestSampleConfigsShipPlaceholder: the maintainer scripts start the
// service only once the ID scope placeholder is gone, so every config a
// package ships must carry it.
func TestSampleConfigsShipPlaceholder(t *testing.T) {
	for _, c := range []string{"configs/agent.yaml", "firmware/openwrt/files/agent.yaml"} {
		if s := readFile(t, repoRoot(t), c); !strings.Contains(s, "id_scope: 0ne00012345") || !strings.Contains(s, placeholderKey) {
			t.Errorf("%s lacks the placeholders (id_scope 0ne00012345, key %s) the postinst checks for", c, placeholderKey)
		}
	}
}

// TestShippedConfigsValidate runs `porthole-agent validate` on every config
// a package or image ships, installed 0600 as the packages install them,
// once its placeholders are filled in (validate refuses the placeholders
// themselves, which is what keeps the service disabled until then).
func TestShippedConfigsValidate(t *testing.T) {
	agent := agentBinary(t)
	for _, c := range []string{"configs/agent.yaml", "firmware/openwrt/files/agent.yaml"} {
		dir := t.TempDir()
		writeFile(t, dir, "agent.yaml", configured(t, readFile(t, repoRoot(t), c)), 0o600)
		out, err := runErr(nil, agent, "-config", filepath.Join(dir, "agent.yaml"), "validate")
		if err != nil || strings.Contains(out, "warning") {
			t.Errorf("porthole-agent validate %s (placeholders filled in): %v\n%s", c, err, out)
		}
	}
}
