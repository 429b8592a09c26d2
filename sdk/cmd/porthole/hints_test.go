package main

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

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
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"untrusted", append([]string{"stdio", "dev1"}, noCA...), []string{"certificate", "--ca <ca.pem>"}},
		{"device string", []string{"stdio", "dev1", "--connection-string", deviceCS}, []string{"device connection string", "service connection string", "Shared access policies"}},
		{"device string for dps", []string{"dps", "get", "x", "--dps-connection-string", deviceCS}, []string{"DPS: this is a device connection string", "provisioningserviceowner"}},
		{"no such host", []string{"stdio", "dev1", "--connection-string", cs("nowhere.invalid")}, []string{"nowhere.invalid does not resolve", "--resolve nowhere.invalid:443="}},
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
