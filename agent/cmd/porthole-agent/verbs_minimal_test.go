//go:build porthole_minimal

package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// checkDoctor: a minimal build has no doctor; it says so with a usage error.
func checkDoctor(ctx context.Context, t *testing.T, path string) {
	t.Helper()
	err := run(ctx, []string{"-config", path, "doctor"}, &bytes.Buffer{}, &bytes.Buffer{})
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "porthole_minimal") {
		t.Fatalf("doctor in a minimal build: %v", err)
	}
}

func TestMinimalVerbs(t *testing.T) {
	good, _ := writeConfig(t, "")
	for _, verb := range []string{"doctor", "install", "uninstall", "start", "stop"} {
		err := run(context.Background(), []string{"-config", good, verb}, &bytes.Buffer{}, &bytes.Buffer{})
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), verb+" is not in this build") {
			t.Errorf("%s: %v", verb, err)
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"help"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if u := out.String(); strings.Contains(u, "  doctor ") || strings.Contains(u, "  install ") || !strings.Contains(u, "minimal build") {
		t.Errorf("usage of a minimal build:\n%s", u)
	}
}
