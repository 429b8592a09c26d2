package hubsimtest

import (
	"os"
	"os/exec"
	"testing"
)

// RequireTool returns the path of an external program a test drives (ssh,
// sshd, dropbear, node, mosquitto_sub, …). When it is missing the test is
// skipped on a developer machine, but fails in CI (CI=true), naming the
// tool and the Debian package that provides it: CI must never pass by
// silently skipping what it was meant to check. `make test` installs these
// packages when run as root.
func RequireTool(tb testing.TB, name, debianPackage string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := dir + "/" + name; isExecutable(p) {
			return p
		}
	}
	msg := "missing tool " + name + " (Debian package " + debianPackage + "; `make test` installs it when run as root)"
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
