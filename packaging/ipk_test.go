package packaging

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tgzEntry is one member of a tar.gz.
type tgzEntry struct {
	hdr  *tar.Header
	data []byte
}

// readTGZ reads every member of a gzip-compressed tar, in order.
func readTGZ(t *testing.T, b []byte) []tgzEntry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	tr := tar.NewReader(zr)
	var out []tgzEntry
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tgzEntry{h, data})
	}
}

func byName(entries []tgzEntry) map[string]tgzEntry {
	m := map[string]tgzEntry{}
	for _, e := range entries {
		m[strings.TrimPrefix(strings.TrimPrefix(e.hdr.Name, "./"), "/")] = e
	}
	return m
}

// controlFields parses a Debian-style control file (no continuation lines
// needed beyond Description).
func controlFields(s string) map[string]string {
	f := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(line, " ") {
			f[k] = v
		}
	}
	return f
}

// TestIpkStructure checks the OpenWrt package as opkg reads it: an outer
// gzip'd tar (what OpenWrt's own scripts/ipkg-build writes; opkg also reads
// the older ar container) holding debian-binary, control.tar.gz and
// data.tar.gz; control fields, conffiles, maintainer scripts, data paths,
// modes and owners.
func TestIpkStructure(t *testing.T) {
	ipk := buildPackage(t, "ipk", "x86_64", "v1.2.3")
	if got, want := filepath.Base(ipk), "porthole-agent_1.2.3_x86_64.ipk"; got != want {
		t.Errorf("file name %s, want %s", got, want)
	}
	raw, err := os.ReadFile(ipk)
	if err != nil {
		t.Fatal(err)
	}
	outer := byName(readTGZ(t, raw))
	for _, n := range []string{"debian-binary", "control.tar.gz", "data.tar.gz"} {
		if _, ok := outer[n]; !ok {
			t.Fatalf("ipk lacks %s (has %v)", n, keys(outer))
		}
	}
	if got := string(outer["debian-binary"].data); got != "2.0\n" {
		t.Errorf("debian-binary %q", got)
	}

	control := byName(readTGZ(t, outer["control.tar.gz"].data))
	f := controlFields(string(control["control"].data))
	for k, want := range map[string]string{
		"Package": "porthole-agent", "Version": "1.2.3", "Architecture": "x86_64", "Section": "net",
		"Depends": "ca-bundle",
	} {
		if f[k] != want {
			t.Errorf("control %s: %q, want %q", k, f[k], want)
		}
	}
	for _, k := range []string{"Maintainer", "Description", "Installed-Size"} {
		if f[k] == "" {
			t.Errorf("control lacks %s", k)
		}
	}
	if got := strings.TrimSpace(string(control["conffiles"].data)); got != "/etc/porthole/agent.yaml" {
		t.Errorf("conffiles %q, want only /etc/porthole/agent.yaml", got)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		e, ok := control[s]
		if !ok {
			t.Errorf("control.tar.gz lacks %s", s)
			continue
		}
		if e.hdr.Mode&0o111 == 0 {
			t.Errorf("%s not executable: %o", s, e.hdr.Mode)
		}
		want := readFile(t, repoRoot(t), "packaging/scripts/"+s)
		if string(e.data) != want {
			t.Errorf("%s differs from packaging/scripts/%s", s, s)
		}
	}

	data := byName(readTGZ(t, outer["data.tar.gz"].data))
	files := []struct {
		path string
		typ  byte
		mode int64
		src  string // repo file it must equal, if any
	}{
		{"usr/bin/porthole-agent", tar.TypeReg, 0o755, ""},
		{"etc/porthole/agent.yaml", tar.TypeReg, 0o600, "firmware/openwrt/files/agent.yaml"},
		{"etc/init.d/porthole-agent", tar.TypeReg, 0o755, "firmware/openwrt/files/porthole-agent.init"},
		{"etc/porthole/state", tar.TypeDir, 0o700, ""},
		{"etc/porthole", tar.TypeDir, 0o755, ""},
	}
	for _, want := range files {
		e, ok := data[want.path]
		if !ok {
			e, ok = data[want.path+"/"]
		}
		if !ok {
			t.Errorf("data.tar.gz lacks %s (has %v)", want.path, keys(data))
			continue
		}
		if e.hdr.Typeflag != want.typ || e.hdr.Mode&0o7777 != want.mode {
			t.Errorf("%s: type %c mode %o, want %c %o", want.path, e.hdr.Typeflag, e.hdr.Mode&0o7777, want.typ, want.mode)
		}
		if e.hdr.Uid != 0 || e.hdr.Gid != 0 || (e.hdr.Uname != "" && e.hdr.Uname != "root") {
			t.Errorf("%s: owner %d:%d %q, want root", want.path, e.hdr.Uid, e.hdr.Gid, e.hdr.Uname)
		}
		if want.src != "" && string(e.data) != readFile(t, repoRoot(t), want.src) {
			t.Errorf("%s differs from %s", want.path, want.src)
		}
	}
	for name := range data {
		if strings.HasPrefix(name, "usr/lib/systemd") || strings.HasPrefix(name, "var/lib/porthole") {
			t.Errorf("ipk ships %s, which is for Debian", name)
		}
	}
	if !strings.Contains(string(data["etc/porthole/agent.yaml"].data), "state_dir: /etc/porthole/state") {
		t.Error("OpenWrt config does not keep state on flash (/etc/porthole/state)")
	}
}

func keys[V any](m map[string]V) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

// extractTGZ writes a tar.gz's files and directories under root.
func extractTGZ(t *testing.T, b []byte, root string) {
	t.Helper()
	for _, e := range readTGZ(t, b) {
		p := filepath.Join(root, filepath.Clean("/"+e.hdr.Name))
		switch e.hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, fs.FileMode(e.hdr.Mode)&fs.ModePerm); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			writeFile(t, root, strings.TrimPrefix(p, root), string(e.data), fs.FileMode(e.hdr.Mode)&fs.ModePerm)
		}
	}
}

// TestIpkScriptsProcd runs the ipk's maintainer scripts the way opkg does on
// an OpenWrt device (chrooted under BusyBox sh, a fake /etc/rc.common
// recording what the procd init script is asked to do) and the way the
// image builder does (IPKG_INSTROOT set, scripts run on the build host).
func TestIpkScriptsProcd(t *testing.T) {
	ipk := buildPackage(t, "ipk", "x86_64", "v1.2.3")
	raw, err := os.ReadFile(ipk)
	if err != nil {
		t.Fatal(err)
	}
	outer := byName(readTGZ(t, raw))

	newOpenWrtRoot := func(t *testing.T) string {
		root := newRoot(t)
		extractTGZ(t, outer["data.tar.gz"].data, root)
		extractTGZ(t, outer["control.tar.gz"].data, filepath.Join(root, "ctl"))
		// rc.common is run as the init script's interpreter:
		// /bin/sh /etc/rc.common /etc/init.d/porthole-agent ACTION.
		writeFile(t, root, "etc/rc.common", "echo \"rc.common ${1##*/} $2\" >>/"+callLog+"\n", 0o644)
		return root
	}

	t.Run("device", func(t *testing.T) {
		root := newOpenWrtRoot(t)
		script := func(name, arg string) string {
			return run(t, nil, "chroot", root, "/bin/sh", "/ctl/"+name, arg)
		}
		// The sample config: left disabled, nothing started.
		out := script("postinst", "configure")
		if got := takeCalls(t, root); got != nil {
			t.Errorf("postinst with the sample config: %q, want nothing", got)
		}
		if !strings.Contains(out, "left disabled: edit /etc/porthole/agent.yaml") {
			t.Errorf("postinst does not say the config needs editing:\n%s", out)
		}
		// A first install over a filled-in config: enabled and started.
		configure(t, root)
		mark := filepath.Join(root, "etc/porthole/state/.package-installed")
		if err := os.Remove(mark); err != nil {
			t.Fatalf("postinst left no first-install marker: %v", err)
		}
		script("postinst", "configure")
		if got, want := takeCalls(t, root), []string{"rc.common porthole-agent enable", "rc.common porthole-agent start"}; !slices.Equal(got, want) {
			t.Errorf("first install with an edited config: %q, want %q", got, want)
		}
		// opkg upgrade: restarted when running, never enabled again.
		script("postinst", "configure")
		if got, want := takeCalls(t, root), []string{"rc.common porthole-agent running", "rc.common porthole-agent restart"}; !slices.Equal(got, want) {
			t.Errorf("upgrade: %q, want %q", got, want)
		}
		script("prerm", "remove")
		if got, want := takeCalls(t, root), []string{"rc.common porthole-agent enabled", "rc.common porthole-agent stop", "rc.common porthole-agent disable"}; !slices.Equal(got, want) {
			t.Errorf("prerm: %q, want %q", got, want)
		}
		if _, err := os.Stat(mark); err == nil {
			t.Error("prerm kept the first-install marker of an enabled service")
		}
		script("postrm", "remove")
		if got := takeCalls(t, root); got != nil {
			t.Errorf("postrm: %q, want nothing", got)
		}
	})

	t.Run("image-build", func(t *testing.T) {
		root := newOpenWrtRoot(t)
		if _, err := os.Stat(filepath.Join(root, "etc/rc.common")); err != nil {
			t.Fatal("the root must look like OpenWrt, or the host's init could be touched")
		}
		env := []string{"IPKG_INSTROOT=" + root}
		// The sample config: no boot links.
		run(t, env, "sh", filepath.Join(root, "ctl/postinst"), "configure")
		wantGone(t, root, "etc/rc.d/S95porthole-agent", "etc/rc.d/K10porthole-agent")
		// An image built with its config filled in: enabled for the first boot.
		configure(t, root)
		os.Remove(filepath.Join(root, "etc/porthole/state/.package-installed"))
		run(t, env, "sh", filepath.Join(root, "ctl/postinst"), "configure")
		for _, link := range []string{"etc/rc.d/S95porthole-agent", "etc/rc.d/K10porthole-agent"} {
			if got, err := os.Readlink(filepath.Join(root, link)); err != nil || got != "../init.d/porthole-agent" {
				t.Errorf("%s -> %q (%v), want ../init.d/porthole-agent", link, got, err)
			}
		}
		if got := takeCalls(t, root); got != nil {
			t.Errorf("image build ran the init script: %q", got)
		}
		run(t, env, "sh", filepath.Join(root, "ctl/prerm"), "remove")
		wantGone(t, root, "etc/rc.d/S95porthole-agent", "etc/rc.d/K10porthole-agent")
	})
}

// TestProcdInitScript sources the procd init script with procd's helpers
// stubbed and checks the instance it declares.
func TestProcdInitScript(t *testing.T) {
	sh := needTool(t, "sh", "dash")
	initScript := filepath.Join(repoRoot(t), "firmware/openwrt/files/porthole-agent.init")
	script := `
user_exists() { [ "$1" = "$HAVE_USER" ]; }
chown() { echo "chown $*"; }
chmod() { :; }
mkdir() { :; }
procd_open_instance() { echo "open $*"; }
procd_set_param() { echo "param $*"; }
procd_close_instance() { echo close; }
. "$1"
echo "START=$START STOP=$STOP USE_PROCD=$USE_PROCD"
start_service
`
	// Without the porthole user (an .ipk built outside OpenWrt's tree) the
	// agent runs as root and nothing is chowned.
	out := run(t, []string{"HAVE_USER=none"}, sh, "-c", script, "sh", initScript)
	if !strings.Contains(out, "param user root\n") || strings.Contains(out, "chown") {
		t.Errorf("without the porthole user: want user root and no chown:\n%s", out)
	}
	// With it (USERID in the OpenWrt Makefile): the agent runs as porthole,
	// which owns the config and the state directory.
	out = run(t, []string{"HAVE_USER=porthole"}, sh, "-c", script, "sh", initScript)
	for _, want := range []string{
		"chown porthole:porthole /etc/porthole/agent.yaml\n",
		"chown -R porthole:porthole /etc/porthole/state\n",
		"param user porthole\n",
		"START=95 STOP=10 USE_PROCD=1",
		"open \n",
		"param command /usr/bin/porthole-agent run\n",
		"param env PORTHOLE_CONFIG=/etc/porthole/agent.yaml\n",
		"param respawn 3600 5 0\n",
		"param stdout 1\n",
		"param stderr 1\n",
		"param reload_signal HUP\n",
		"close\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("procd init output lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "open") > strings.Index(out, "param command") || strings.Index(out, "param command") > strings.Index(out, "close") {
		t.Errorf("params outside the instance:\n%s", out)
	}
}
