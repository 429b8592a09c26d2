package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The group key and device key of Microsoft's symmetric-key group
// tutorial (the same vector as sdk/auth's ExampleDeriveGroupKey).
const (
	tutorialGroupKey = "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
	tutorialID       = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
	tutorialKey      = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
)

// result is what one derive-key run left behind.
type result struct {
	stdout, stderr string
	err            error
	dir            string
}

func TestDeriveKey(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    func(dir string) []string // dir: a temp dir with group.key (mode 0600)
		stdin   string
		keyMode os.FileMode
		check   func(t *testing.T, r result)
	}{
		{
			name:  "stdin to stdout",
			args:  func(string) []string { return []string{"--group-key-file", "-", "--stdout", tutorialID} },
			stdin: tutorialGroupKey + "\n",
			check: func(t *testing.T, r result) {
				if r.err != nil || r.stdout != tutorialID+" "+tutorialKey+"\n" {
					t.Fatalf("stdout %q, err %v", r.stdout, r.err)
				}
			},
		},
		{
			name: "file to files, several ids",
			args: func(dir string) []string {
				return []string{"--group-key-file", filepath.Join(dir, "group.key"), "--out-dir", filepath.Join(dir, "out"), tutorialID, "dev-2"}
			},
			check: func(t *testing.T, r result) {
				if r.err != nil {
					t.Fatal(r.err)
				}
				p := filepath.Join(r.dir, "out", tutorialID+".key")
				b, err := os.ReadFile(p)
				if err != nil || string(b) != tutorialKey+"\n" {
					t.Fatalf("%s: %q %v", p, b, err)
				}
				if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
					t.Errorf("mode %04o, want 0600", st.Mode().Perm())
				}
				if _, err := os.Stat(filepath.Join(r.dir, "out", "dev-2.key")); err != nil {
					t.Error(err)
				}
				if strings.Contains(r.stdout, tutorialKey) || !strings.Contains(r.stdout, "key written to") {
					t.Errorf("stdout %q: want where the keys went, not the keys", r.stdout)
				}
			},
		},
		{
			name: "group key on the command line is refused",
			args: func(string) []string { return []string{"--group-key=" + tutorialGroupKey, "--stdout", tutorialID} },
			check: func(t *testing.T, r result) {
				var ue *usageError
				if !errors.As(r.err, &ue) || !strings.Contains(r.err.Error(), "never from the command line") {
					t.Fatalf("err %v", r.err)
				}
				if strings.Contains(r.err.Error()+r.stdout+r.stderr, tutorialGroupKey) {
					t.Error("the group key was echoed")
				}
			},
		},
		{
			name: "world-readable key file warns",
			args: func(dir string) []string {
				return []string{"--group-key-file", filepath.Join(dir, "group.key"), "--stdout", tutorialID}
			},
			keyMode: 0o644,
			check: func(t *testing.T, r result) {
				if r.err != nil || !strings.Contains(r.stderr, "chmod 600") {
					t.Fatalf("err %v, stderr %q", r.err, r.stderr)
				}
			},
		},
		{name: "no key file", args: func(string) []string { return []string{"--stdout", tutorialID} }, check: wantUsage("usage: porthole dps derive-key")},
		{name: "no id", args: func(string) []string { return []string{"--group-key-file", "-", "--stdout"} }, check: wantUsage("usage: porthole dps derive-key")},
		{name: "neither output", args: func(string) []string { return []string{"--group-key-file", "-", tutorialID} }, check: wantUsage("exactly one of")},
		{name: "both outputs", args: func(dir string) []string {
			return []string{"--group-key-file", "-", "--stdout", "--out-dir", dir, tutorialID}
		}, check: wantUsage("exactly one of")},
		{name: "id with a slash", args: func(dir string) []string { return []string{"--group-key-file", "-", "--out-dir", dir, "../evil"} }, stdin: tutorialGroupKey, check: wantUsage("'/' is not allowed")},
		{name: "id ..", args: func(dir string) []string { return []string{"--group-key-file", "-", "--out-dir", dir, ".."} }, stdin: tutorialGroupKey, check: wantUsage("not usable as a file name")},
		{name: "id too long", args: func(string) []string { return []string{"--group-key-file", "-", "--stdout", strings.Repeat("a", 129)} }, stdin: tutorialGroupKey, check: wantUsage("1 to 128")},
		{
			name: "not a key", args: func(string) []string { return []string{"--group-key-file", "-", "--stdout", "dev"} }, stdin: "not base64!",
			check: func(t *testing.T, r result) {
				if r.err == nil || !strings.Contains(r.err.Error(), "group key in stdin") || r.stdout != "" {
					t.Fatalf("err %v stdout %q", r.err, r.stdout)
				}
			},
		},
		{
			name: "empty key", args: func(string) []string { return []string{"--group-key-file", "-", "--stdout", "dev"} }, stdin: "\n",
			check: func(t *testing.T, r result) {
				if r.err == nil || !strings.Contains(r.err.Error(), "is empty") {
					t.Fatalf("err %v", r.err)
				}
			},
		},
		{
			name: "missing key file", args: func(dir string) []string {
				return []string{"--group-key-file", filepath.Join(dir, "nope"), "--stdout", "dev"}
			},
			check: func(t *testing.T, r result) {
				if !errors.Is(r.err, os.ErrNotExist) {
					t.Fatalf("err %v", r.err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mode := tc.keyMode
			if mode == 0 {
				mode = 0o600
			}
			kp := filepath.Join(dir, "group.key")
			if err := os.WriteFile(kp, []byte(tutorialGroupKey+"\n"), mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(kp, mode); err != nil { // past the umask
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(dir, "out"), 0o700); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			args := append([]string{"dps", "derive-key"}, tc.args(dir)...)
			err := runEnv(context.Background(), testEnv(t, nil), args, strings.NewReader(tc.stdin), &stdout, &stderr)
			tc.check(t, result{stdout: stdout.String(), stderr: stderr.String(), err: err, dir: dir})
		})
	}
}

// wantUsage checks for a usage error containing words, and no output.
func wantUsage(words string) func(t *testing.T, r result) {
	return func(t *testing.T, r result) {
		t.Helper()
		var ue *usageError
		if !errors.As(r.err, &ue) || !strings.Contains(r.err.Error(), words) {
			t.Fatalf("err %v, want a usage error with %q", r.err, words)
		}
		if r.stdout != "" {
			t.Fatalf("stdout %q", r.stdout)
		}
	}
}

// An id that passes validRegistrationID names a file directly inside
// --out-dir.
func FuzzRegistrationIDStaysInDir(f *testing.F) {
	for _, s := range []string{tutorialID, "..", ".", "../x", "a/b", "a:b.c_d-e", "", strings.Repeat("z", 128)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if validRegistrationID(id) != nil {
			return
		}
		if p := filepath.Join("out", id+".key"); filepath.Dir(p) != "out" {
			t.Fatalf("id %q writes to %s", id, p)
		}
	})
}
