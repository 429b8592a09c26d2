package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/service/servicetest"
)

// TestInvokeFailureStatus: a method answering 500 prints its answer and
// makes porthole fail.
func TestInvokeFailureStatus(t *testing.T) {
	sim := hubsimtest.New(t)
	startDevice(t, sim, "dev1", func(c *servicetest.DeviceConfig) {
		c.Method = func(name string, payload []byte) (int, []byte) { return 500, []byte(`{"error":"disk full"}`) }
	})
	ctx, cancel := timeoutCtx(t)
	defer cancel()
	var out bytes.Buffer
	err := runEnv(ctx, testEnv(t, nil), append([]string{"invoke", "dev1", "update"}, simFlags(sim)...), nil, &out, io.Discard)
	var ms *methodStatusError
	if !errors.As(err, &ms) || ms.status != 500 || err.Error() != `method "update" answered with status 500` {
		t.Fatalf("err %v", err)
	}
	if out.String() != `{"status":500,"payload":{"error":"disk full"}}`+"\n" {
		t.Errorf("output %q", out.String())
	}
}

// TestErrorsNameTheNextStep: an untrusted certificate suggests --ca; a
// device connection string where a service one is needed says which kind
// is needed and where to find it; a host that does not resolve suggests
// --resolve.
func TestErrorsNameTheNextStep(t *testing.T) {
	sim := hubsimtest.New(t)
	startDevice(t, sim, "dev1", nil)
	ctx, cancel := timeoutCtx(t)
	defer cancel()
	noCA := simFlags(sim)
	for i := range noCA {
		if noCA[i] == "--ca" {
			noCA = append(noCA[:i], noCA[i+2:]...)
			break
		}
	}
	deviceKey := hubsimtest.NewKey(t)
	deviceCS := sim.DeviceConnectionString(hubHost, "dev1", deviceKey)
	// A --resolve entry that sends the hub to a port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	stale := hubHost + ":443=" + closed
	// The right hub, reached, but with a key it does not know.
	wrongKey := []string{"--connection-string", cs(hubHost), "--ca", sim.CAFile, "--resolve", hubHost + ":443=" + sim.HTTPSAddr}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"untrusted", append([]string{"stdio", "dev1"}, noCA...), []string{"certificate", "--ca <ca.pem>"}},
		{"device string", []string{"stdio", "dev1", "--connection-string", deviceCS}, []string{"device connection string", "service connection string", "Shared access policies"}},
		{"device string for dps", []string{"dps", "get", "x", "--dps-connection-string", deviceCS}, []string{"DPS: this is a device connection string", "provisioningserviceowner"}},
		{"no such host", []string{"stdio", "dev1", "--connection-string", cs("nowhere.invalid")}, []string{"nowhere.invalid does not resolve", "--resolve nowhere.invalid:443="}},
		{"stale resolve entry", []string{"stdio", "dev1", "--connection-string", cs(hubHost), "--ca", sim.CAFile, "--resolve", stale},
			[]string{"connecting to " + closed + " because of the resolve entry \"" + stale + "\": is it still right?"}},
		{"credential refused", append([]string{"stdio", "dev1"}, wrongKey...), []string{"the credential was refused", "ServiceConnect and RegistryRead"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runEnv(ctx, testEnv(t, nil), tc.args, strings.NewReader(""), io.Discard, io.Discard)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), deviceKey) || strings.Contains(err.Error(), "SharedAccessKey=c2") {
				t.Errorf("error shows a key: %v", err)
			}
		})
	}
}

// TestSSHTimeout: a device that does not answer the stream request is
// reported by porthole after --timeout, and ssh never starts.
func TestSSHTimeout(t *testing.T) {
	sim := hubsimtest.New(t)
	release := make(chan struct{})
	startDevice(t, sim, "dev1", func(c *servicetest.DeviceConfig) {
		c.Accept = func(string) bool { <-release; return false }
	})
	defer close(release) // before the device's cleanup closes it
	e := testEnv(t, nil)
	ran := false
	e.command = func(ctx context.Context, name string, args ...string) *exec.Cmd {
		ran = true
		return exec.CommandContext(ctx, "false")
	}
	ctx, cancel := timeoutCtx(t)
	defer cancel()
	start := time.Now()
	err := runEnv(ctx, e, append([]string{"ssh", "dev1", "--timeout", "2s"}, simFlags(sim)...), strings.NewReader(""), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `device dev1 did not accept stream "ssh" within 2s (--timeout)`) || ran {
		t.Fatalf("err %v, ssh ran %v", err, ran)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("took %v", took)
	}
}
