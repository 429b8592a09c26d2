package packaging

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/testwait"
)

// fakeAgent stands in for porthole-agent in a BusyBox root: `validate`
// passes only when /valid exists; `run` logs its start and the signals it
// gets to /agent.log and stays in the foreground.
const fakeAgent = `#!/bin/sh
case "$1" in
validate) [ -e /valid ] ;;
run)
	trap 'echo hup >>/agent.log' HUP
	trap 'echo term >>/agent.log; exit 0' TERM
	echo "run $PORTHOLE_CONFIG" >>/agent.log
	while :; do sleep 1; done
	;;
esac
`

// TestBuildrootS95 drives firmware/buildroot/S95porthole-agent in a
// BusyBox-only root with BusyBox's start-stop-daemon: start refuses a
// config validate rejects, starts the agent in the background with a pid
// file, reload sends SIGHUP, stop sends SIGTERM and waits for the exit.
func TestBuildrootS95(t *testing.T) {
	root := newRoot(t)
	writeFile(t, root, "etc/init.d/S95porthole-agent", readFile(t, repoRoot(t), "firmware/buildroot/S95porthole-agent"), 0o755)
	writeFile(t, root, "usr/bin/porthole-agent", fakeAgent, 0o755)
	s95 := func(action string) (string, error) {
		return runErr(nil, "chroot", root, "/etc/init.d/S95porthole-agent", action)
	}
	const pidfile = "var/run/porthole-agent.pid"
	agentLog := func() string {
		b, _ := os.ReadFile(filepath.Join(root, "agent.log"))
		return string(b)
	}

	out, err := s95("start")
	if err == nil || !strings.Contains(out, "FAIL (check /etc/porthole/agent.yaml with: porthole-agent validate)") {
		t.Errorf("start with a config validate rejects: %v\n%s", err, out)
	}
	if pid := readPid(root, pidfile); pid != 0 {
		t.Errorf("start over a rejected config wrote pid %d", pid)
	}

	writeFile(t, root, "valid", "", 0o644)
	if out, err := s95("start"); err != nil || !strings.Contains(out, "Starting porthole-agent: OK") {
		t.Fatalf("start: %v\n%s", err, out)
	}
	pid := readPid(root, pidfile)
	if pid == 0 || !alive(pid) {
		t.Fatalf("no live agent in the pid file (%d)", pid)
	}
	t.Cleanup(func() {
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	testwait.For(t, 10*time.Second, "the agent to start with PORTHOLE_CONFIG", func() (bool, string) {
		l := agentLog()
		return strings.Contains(l, "run /etc/porthole/agent.yaml\n"), l
	})

	if out, err := s95("reload"); err != nil || !strings.Contains(out, "OK") {
		t.Errorf("reload: %v\n%s", err, out)
	}
	testwait.For(t, 10*time.Second, "the agent to get SIGHUP", func() (bool, string) {
		l := agentLog()
		return strings.Contains(l, "hup\n"), l
	})

	if out, err := s95("stop"); err != nil || !strings.Contains(out, "Stopping porthole-agent: OK") {
		t.Errorf("stop: %v\n%s", err, out)
	}
	// stop returns once the agent has exited (it waits on start-stop-daemon -K -t).
	if alive(pid) {
		t.Errorf("agent %d still running after stop returned", pid)
	}
	if l := agentLog(); !strings.Contains(l, "term\n") {
		t.Errorf("the agent got no SIGTERM: %q", l)
	}
	wantGone(t, root, pidfile)

	if out, err := s95("status"); err == nil || !strings.Contains(out, "Usage:") {
		t.Errorf("unknown action: %v\n%s", err, out)
	}
}
