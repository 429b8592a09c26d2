package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHelpWithExamples: "porthole help <cmd>", "<cmd> -h" and "<cmd>
// --help" show the command's usage with its examples and flags, on stdout,
// and succeed.
func TestHelpWithExamples(t *testing.T) {
	e := testEnv(t, nil)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"help", "ssh"}, []string{"porthole ssh [user@]<device>", "Examples:", "porthole ssh admin@dev1", "--stream", "--hub", "--timeout"}},
		{[]string{"ssh", "-h"}, []string{"Examples:", "porthole ssh dev1"}},
		{[]string{"stdio", "--help"}, []string{"Examples:", "ProxyCommand"}},
		{[]string{"invoke", "dev1", "x", "-h"}, []string{"Examples:", "--payload"}},
		{[]string{"help", "dps", "enroll"}, []string{"Examples:", "--key-file", "--group"}},
		{[]string{"dps", "derive-key", "--help"}, []string{"Examples:", "--group-key-file"}},
		{[]string{"help", "completion"}, []string{"bash", "zsh", "fish"}},
		{[]string{"help", "version"}, []string{"Examples:", "porthole version"}},
		{[]string{"--help"}, []string{"porthole ssh", "Available Commands:", "devices", "status", "ssh-config"}},
	} {
		var out, errOut bytes.Buffer
		err := runEnv(context.Background(), e, tc.args, strings.NewReader(""), &out, &errOut)
		if err != nil {
			t.Errorf("%q: %v (stderr %q)", tc.args, err, errOut.String())
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%q: output lacks %q:\n%s", tc.args, w, out.String())
			}
		}
	}
	// After "--" a -h belongs to ssh, not to porthole.
	if fs := flagsOf(func(ctx context.Context, a []string) error { return cmdSSH(ctx, e, a, nil, io.Discard, io.Discard) }); fs.Lookup("hub") == nil {
		t.Error("ssh has no --hub flag")
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := runEnv(context.Background(), testEnv(t, nil), []string{"version"}, nil, &out, io.Discard); err != nil || out.String() != "porthole "+version+"\n" {
		t.Fatalf("version: %v %q", err, out.String())
	}
}

// TestUnknownConfigKey: a typo in the operator config is reported with
// file:line, the field and the closest known key, never a Go type name;
// wrong kinds of values likewise.
func TestUnknownConfigKey(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         []string
	}{
		{"typo", "conection_string: x\n", []string{"config.yaml:1: conection_string: unknown key \"conection_string\" (did you mean \"connection_string\"?)"}},
		{"nested typo", "hubs:\n  eu:\n    connection_strng: x\n", []string{":3: hubs.eu.connection_strng: unknown key", `did you mean "connection_string"?`}},
		{"wrong section", "host_suffix: .x\n", []string{":1: host_suffix: unknown key", `belongs under ssh`}},
		{"two at once", "ca_fil: a\nresolv: []\n", []string{`did you mean "ca_file"?`, `did you mean "resolve"?`, ":2:"}},
		{"wrong kind", "resolve: a.example:1=b:2\nhubs: [x]\n", []string{":1: resolve: expected a list", ":2: hubs: expected a mapping"}},
		{"text for mapping", "dps: HostName=x\n", []string{":1: dps: expected a mapping of keys, got \"HostName=x\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := testEnv(t, nil)
			writeConfig(t, e, tc.config, 0o600)
			_, err := loadSettings(e, &connFlags{}, io.Discard)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, goName := range []string{"main.", "[]string", "map[string]", "!!"} {
				if strings.Contains(err.Error(), goName) {
					t.Errorf("error shows %q:\n%v", goName, err)
				}
			}
		})
	}
}

func FuzzCheckConfigKeys(f *testing.F) {
	for _, s := range []string{"hubs:\n  a:\n    connection_string: x\n", "dps: [1]", "resolve: {a: b}", "&a [*a]", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = checkConfigKeys("f.yaml", []byte(s)) // must not panic
	})
}

// completionEnv is a test env whose lookup cache holds dev-eu-1 (hub-eu)
// and dev-us-1 (hub-us).
func completionEnv(t *testing.T) *env {
	e := testEnv(t, nil)
	if err := openCache(e, "").putAll(map[string]string{"dev-eu-1": "hub-eu.local", "dev-us-1": "hub-us.local", "gw-7": "hub-us.local"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestCompletionCandidates: the hidden __complete command (what the shell
// scripts call) offers commands, flags and cached device names.
func TestCompletionCandidates(t *testing.T) {
	e := completionEnv(t)
	for _, tc := range []struct {
		args      []string
		want, not []string
	}{
		{[]string{"__complete", ""}, []string{"ssh", "devices", "status", "ssh-config", "version", "completion"}, nil},
		{[]string{"__complete", "ssh", "dev-"}, []string{"dev-eu-1\thub-eu.local", "dev-us-1\thub-us.local"}, []string{"gw-7"}},
		{[]string{"__complete", "ssh", "--str"}, []string{"--stream"}, []string{"--hub"}},
		{[]string{"__complete", "status", ""}, []string{"gw-7"}, nil},
		{[]string{"__complete", "invoke", "dev-eu-1", ""}, nil, []string{"gw-7"}},
		{[]string{"__complete", "ssh", "--stream", "web", "g"}, []string{"gw-7"}, nil},
		{[]string{"__complete", "dps", ""}, []string{"enroll", "derive-key"}, nil},
	} {
		var out bytes.Buffer
		if err := runEnv(context.Background(), e, tc.args, nil, &out, io.Discard); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		lines := strings.Split(out.String(), "\n")
		has := func(w string) bool {
			for _, l := range lines {
				if l == w || strings.HasPrefix(l, w+"\t") {
					return true
				}
			}
			return false
		}
		for _, w := range tc.want {
			if !has(w) {
				t.Errorf("%q: no %q in\n%s", tc.args, w, out.String())
			}
		}
		for _, w := range tc.not {
			if has(w) {
				t.Errorf("%q: unexpected %q in\n%s", tc.args, w, out.String())
			}
		}
	}
}

// TestCompletionScripts: the scripts load in bash (bash -n) and a scripted
// completion through the bash script completes commands and device names,
// calling a real porthole binary the way the shell would.
func TestCompletionScripts(t *testing.T) {
	bash := lookTool(t, "bash", "bash")
	// cobra's bash script uses the bash-completion package, as every
	// interactive bash setup has it.
	bashCompletion := lookFile(t, "/usr/share/bash-completion/bash_completion", "bash-completion")
	for _, sh := range []string{"bash", "zsh", "fish"} {
		var out bytes.Buffer
		if err := runEnv(context.Background(), testEnv(t, nil), []string{"completion", sh}, nil, &out, io.Discard); err != nil || out.Len() == 0 {
			t.Fatalf("completion %s: %v", sh, err)
		}
		if sh == "bash" {
			script := filepath.Join(t.TempDir(), "porthole.bash")
			if err := os.WriteFile(script, out.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			if b, err := exec.Command(bash, "-n", script).CombinedOutput(); err != nil {
				t.Fatalf("bash -n: %v\n%s", err, b)
			}
		}
	}

	// A porthole binary for the script to call.
	bin := buildPorthole(t)
	dir := filepath.Dir(bin)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	home := t.TempDir()
	cacheHome := filepath.Join(home, ".cache")
	if err := writeFileAtomic(filepath.Join(cacheHome, "porthole", "default", "devices.json"),
		[]byte(`{"devices":{"dev-eu-1":{"hub":"hub-eu.local","at":"2026-01-01T00:00:00Z"},"dev-us-1":{"hub":"hub-us.local","at":"2026-01-01T00:00:00Z"}}}`)); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(filepath.Join(home, ".config", "porthole", "config.yaml"),
		[]byte("hubs:\n  hub-eu:\n    connection_string: "+cs("hub-eu.local")+"\n  hub-us:\n    connection_string: "+cs("hub-us.local")+"\n")); err != nil {
		t.Fatal(err)
	}
	// Complete "porthole ss<TAB>", "porthole ssh dev-<TAB>" and "porthole ssh --hu<TAB>".
	// (compopt complains outside a real completion; only stdout counts.)
	script := `source "$BASH_COMPLETION"
source <(porthole completion bash)
complete_words() {
  COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
  COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  __start_porthole porthole
  printf '%s|' "${COMPREPLY[@]}"; echo
}
complete_words porthole ss
complete_words porthole ssh dev-
complete_words porthole ssh --hu
complete_words porthole ssh --hub hub-
`
	cmd := exec.CommandContext(ctx, bash, "-c", script)
	cmd.Env = []string{"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + home, "XDG_CACHE_HOME=" + cacheHome,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "BASH_COMPLETION=" + bashCompletion}
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripted completion: %v\n%s%s", err, b, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 {
		t.Fatalf("output:\n%s", b)
	}
	for i, want := range [][]string{{"ssh", "ssh-config"}, {"dev-eu-1", "dev-us-1"}, {"--hub"}, {"hub-eu", "hub-us"}} {
		for _, w := range want {
			if !strings.Contains("|"+strings.ReplaceAll(lines[i], " ", "|"), "|"+w+"|") {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
}

// TestUnknownCommand: a typo gets cobra's suggestion and a usage error.
func TestUnknownCommand(t *testing.T) {
	var errOut bytes.Buffer
	err := runEnv(context.Background(), testEnv(t, nil), []string{"shh", "dev1"}, nil, io.Discard, &errOut)
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "ssh") {
		t.Fatalf("err %v", err)
	}
}

// lookFile is lookTool for a data file a package installs.
func lookFile(t *testing.T, path, pkg string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (install %s; make test does)", path, pkg)
		}
		t.Skipf("%s not installed (%s)", path, pkg)
	}
	return path
}
