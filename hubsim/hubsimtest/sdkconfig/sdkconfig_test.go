package sdkconfig_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/hubsim/hubsimtest/sdkconfig"
	"github.com/porthole-iot/porthole/sdk/iothub"
	"github.com/porthole-iot/porthole/sdk/service"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Each configuration works as returned (the package Example in
// hubsimtest drives Provisioning, Device and Service end to end).
func TestConfigsWork(t *testing.T) {
	sim := hubsimtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	d, err := service.NewDPS(sdkconfig.ProvisioningService(sim))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sim.EnrollSymmetricKey("dev1", nil)
	if en, err := d.GetEnrollment(ctx, "dev1"); err != nil || en.RegistrationID != "dev1" {
		t.Fatalf("DPS service client: %+v %v", en, err)
	}

	host := sim.HubHostNames[1]
	svc, err := service.New(sdkconfig.Service(sim, host))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	dev, err := svc.CreateDevice(ctx, "dev2")
	if err != nil {
		t.Fatal(err)
	}
	c, err := iothub.Dial(ctx, sdkconfig.Device(sim, host, "dev2", dev.Authentication.SymmetricKey.PrimaryKey))
	if err != nil {
		t.Fatalf("device client on %s: %v", host, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}
