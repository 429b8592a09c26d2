package nodetest

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/hubsim/internal/simconfig"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The SDKs reach only 443 and 8883 and take IP-literal host names without
// DNS, so every endpoint gets its own loopback address. Validation wants
// distinct host names for hubs and DPS, and IP host names among the listen
// addresses.
const (
	hubA    = "127.0.0.7"
	hubB    = "127.0.0.8"
	dpsHost = "127.0.0.9"
	idScope = "0ne0000NODE"
)

// waitTimeout bounds the Go-side waits (events, registry reads).
const waitTimeout = 20 * time.Second

// startSim runs hubsim on 443/8883 of the dedicated loopback addresses.
// deviceCA becomes a verified CA of hub A.
func startSim(t *testing.T, deviceCA *testCA) *hubsimtest.Sim {
	t.Helper()
	requirePorts(t, []string{hubA, hubB, dpsHost})
	return hubsimtest.New(t, hubsimtest.WithHubConfig(func(c *hubsimtest.HubConfig) {
		for i := range c.Hubs {
			if c.Hubs[i].HostName == hubA {
				c.Hubs[i].ClientCAs = append(c.Hubs[i].ClientCAs, deviceCA.cert)
			}
		}
	}), hubsimtest.WithConfig(func(c *hubsimtest.Config) {
		c.Listen = []string{hubA, hubB, dpsHost}
		c.Ports = simconfig.Ports{HTTPS: 443, MQTT: 8883}
		c.Hubs = []hubsimtest.Hub{{Name: "hub-a", HostName: hubA}, {Name: "hub-b", HostName: hubB}}
		c.DPS.IDScope = idScope
		c.DPS.GlobalEndpoint = dpsHost
		c.DPS.HostName = dpsHost
		c.ApplyDefaults()
	}))
}

// TestNodeSDKs runs every scenario against one sim (the fixed ports allow
// only one at a time).
func TestNodeSDKs(t *testing.T) {
	env := newNodeEnv(t)
	deviceCA := newTestCA(t)
	sim := startSim(t, deviceCA)
	env.caFile = sim.CAFile

	t.Run("Registry", func(t *testing.T) { testRegistry(t, env, sim) })
	t.Run("Query", func(t *testing.T) { testQuery(t, env, sim) })
	t.Run("Methods", func(t *testing.T) { testMethods(t, env, sim) })
	for _, tr := range []string{"Mqtt", "MqttWs"} {
		t.Run("Device/"+tr, func(t *testing.T) { testDevice(t, env, sim, tr) })
	}
	for _, tr := range []string{"Mqtt", "MqttWs"} {
		t.Run("TokenRenewal/"+tr, func(t *testing.T) { testRenew(t, env, sim, tr) })
	}
	t.Run("Connect", func(t *testing.T) { testConnect(t, env, sim, deviceCA) })
	t.Run("ProvisioningService", func(t *testing.T) { testProvisioningService(t, env, sim) })
	t.Run("Provisioning/http-individual", func(t *testing.T) { testProvisionIndividual(t, env, sim) })
	t.Run("Provisioning/mqttws-individual", func(t *testing.T) { testProvisionWebSocket(t, env, sim) })
	t.Run("Provisioning/mqtt-group", func(t *testing.T) { testProvisionGroup(t, env, sim) })
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}
