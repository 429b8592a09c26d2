package sim_test

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/auth"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// TestCurlHealthz: curl, trusting only the sim's CA, reaches /healthz over
// TLS on the picked HTTPS port.
func TestCurlHealthz(t *testing.T) {
	curl := hubsimtest.RequireTool(t, "curl", "curl")
	sim := hubsimtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, "-sS", "--fail", "--cacert", sim.CAFile,
		"https://"+sim.HTTPSAddr+"/healthz").CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"ok"`) {
		t.Errorf("healthz body = %s", out)
	}
}

// TestMosquittoSubThroughTLS: a stock MQTT client (mosquitto_sub) with the
// sim's CA gets through TLS to the broker, authenticates as a hub device
// with a SAS token and receives a cloud-to-device message.
func TestMosquittoSubThroughTLS(t *testing.T) {
	mosq := hubsimtest.RequireTool(t, "mosquitto_sub", "mosquitto-clients")
	sim := hubsimtest.New(t)
	hubHost := sim.HubHostNames[0]
	key := sim.CreateDevice(hubHost, "mosq-1")
	tok, err := auth.DeviceToken(hubHost, "mosq-1", "", key, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(sim.MQTTAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, mosq, "-h", host, "-p", port, "--cafile", sim.CAFile,
		"-V", "mqttv311", "-i", "mosq-1", "-c", // clean session false, like the SDKs
		"-u", hubHost+"/mosq-1/?api-version=2021-04-12", "-P", tok,
		"-t", "devices/mosq-1/messages/devicebound/#", "-q", "1", "-C", "1", "-v")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := sim.Hub(hubHost)
	if err := testwait.Wait(20*time.Second, "mosquitto_sub to connect", func() (bool, string) {
		return h.Connected("mosq-1", ""), "not connected to " + hubHost
	}); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("%v; mosquitto_sub stderr: %s", err, stderr.String())
	}
	if err := h.SendC2D(ctx, "mosq-1", c2d("hello from the cloud")); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(out.String(), "devices/mosq-1/messages/devicebound/") || !strings.Contains(out.String(), "hello from the cloud") {
		t.Errorf("mosquitto_sub printed %q", out.String())
	}
}

func c2d(body string) hubsimtest.C2DMessage { return hubsimtest.C2DMessage{Body: []byte(body)} }
