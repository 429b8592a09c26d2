//go:build !porthole_minimal

package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestServiceConfig(t *testing.T) {
	sc, err := serviceConfig("rel/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Name != serviceName || len(sc.Arguments) != 3 || !filepath.IsAbs(sc.Arguments[1]) || sc.Arguments[2] != "run" {
		t.Fatalf("service config %+v", sc)
	}
}

// checkDoctor runs the doctor verb against the agent's config in
// TestRunAgainstHubsim.
func checkDoctor(ctx context.Context, t *testing.T, path string) {
	t.Helper()
	// doctor reaches the same sim through the same resolve entries. The
	// stream target (127.0.0.1:22) may well be down here, so only the
	// checklist's shape and the cloud-side checks are asserted.
	var out bytes.Buffer
	err := run(ctx, []string{"-config", path, "doctor"}, &out, &bytes.Buffer{})
	if err != nil && !errors.Is(err, errDoctor) {
		t.Fatalf("doctor: %v", err)
	}
	if !strings.Contains(out.String(), "[ ok ]") || strings.Count(out.String(), "\n") < 5 {
		t.Errorf("doctor printed:\n%s", out.String())
	}
	t.Logf("doctor:\n%s", out.String())
}
