package sdkconfig

import (
	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/dps"
	"github.com/porthole-iot/porthole/sdk/iothub"
	"github.com/porthole-iot/porthole/sdk/service"
)

// Device is the hub client configuration of a device with a symmetric key
// (from CreateDevice, or from DPS after provisioning).
func Device(sim *hubsimtest.Sim, hubHost, deviceID, key string) iothub.Config {
	return iothub.Config{
		HostName:        hubHost,
		DeviceID:        deviceID,
		SharedAccessKey: key,
		RootCAs:         sim.CAPool,
		DialContext:     sim.DialContext,
	}
}

// Provisioning is the DPS client configuration of a registration with a
// symmetric key (from EnrollSymmetricKey or a group key derived for it).
func Provisioning(sim *hubsimtest.Sim, registrationID, key string) dps.Config {
	return dps.Config{
		GlobalEndpoint: sim.GlobalEndpoint,
		IDScope:        sim.IDScope,
		RegistrationID: registrationID,
		SymmetricKey:   key,
		RootCAs:        sim.CAPool,
		DialContext:    sim.DialContext,
	}
}

// Service is the service client configuration of a hub (iothubowner).
func Service(sim *hubsimtest.Sim, hubHost string) service.Config {
	return service.Config{
		ConnectionString: sim.HubConnectionString(hubHost),
		RootCAs:          sim.CAPool,
		DialContext:      sim.DialContext,
	}
}

// ProvisioningService is the DPS service client configuration
// (provisioningserviceowner), for service.NewDPS.
func ProvisioningService(sim *hubsimtest.Sim) service.Config {
	return service.Config{
		ConnectionString: sim.DPSConnectionString(),
		RootCAs:          sim.CAPool,
		DialContext:      sim.DialContext,
	}
}
