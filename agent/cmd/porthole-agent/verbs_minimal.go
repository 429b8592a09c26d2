//go:build porthole_minimal

package main

import (
	"context"
	"io"

	"github.com/porthole-iot/porthole/agent/internal/daemon"
)

// A porthole_minimal build leaves out the doctor verb (agent/internal/doctor)
// and the install, uninstall, start and stop verbs (kardianos/service), for
// firmware images that ship their own init script and want the smallest
// binary (SIZE.md has the numbers). Those verbs answer with a usage error
// that says so; every other verb, and the agent itself, is the same as in
// the default build.
const (
	fullBuild    = false
	doctorUsage  = ""
	serviceUsage = ""
	buildNote    = `
This is a minimal build (-tags porthole_minimal): it has no doctor, install,
uninstall, start or stop; the firmware's init script runs "porthole-agent run".
`
)

// startCommand is what status suggests when no agent runs: a minimal
// build has no service verbs; the firmware's init script runs it.
func startCommand(path string) string {
	return "the firmware's init script, or in the foreground: porthole-agent -config " + path + " run"
}

func notInBuild(verb string) error {
	return usagef("%s is not in this build (built with -tags porthole_minimal)", verb)
}

func runDoctor(context.Context, string, bool, io.Writer, io.Writer) error {
	return notInBuild("doctor")
}

func control(verb, _ string, _ io.Writer) error { return notInBuild(verb) }

// runUnderServiceManager never takes over: a minimal build always runs in
// the foreground.
func runUnderServiceManager(daemon.Options) (bool, error) { return false, nil }
