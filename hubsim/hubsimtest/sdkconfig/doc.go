// Package sdkconfig returns ready configurations of porthole's SDK clients
// (sdk/iothub, sdk/dps, sdk/service) for a hubsimtest.Sim: host names, keys,
// the sim's CA and its dial seam filled in, nothing else to set.
//
//	sim := hubsimtest.New(t, hubsimtest.WithFastDPS())
//	key := sim.EnrollSymmetricKey("dev1", nil)
//	res, err := dps.New(sdkconfig.Provisioning(sim, "dev1", key)) …
//
// It is its own package because hubsimtest must not import the SDK: the
// SDK's own tests use hubsimtest.
package sdkconfig
