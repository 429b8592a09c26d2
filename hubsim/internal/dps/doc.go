// Package dps is hubsim's Azure IoT Hub Device Provisioning Service: the
// device registration API over HTTPS and MQTT, the service (enrollment) REST
// API, attestation (symmetric key individual and group-derived, X.509
// individual and group), allocation (hashed, static, geoLatency, custom
// webhook), reprovisioning policies, a per-ID-scope registration quota, and
// fault seams for tests.
//
// HTTPS and MQTT share one engine: a registration is decided when the device
// asks (the hub identity is created, the twin migrated or reset, the custom
// allocation webhook called), and the operation reports "assigning" until
// Config.AssignDelay (plus Faults.SlowAssign) has passed on the injected
// clock. The package starts no goroutines of its own.
//
// The HTTPS API (HTTPAPI, from Service.HTTP) is a set of Go 1.22 ServeMux
// patterns, one per route in the spelling the official SDKs send, each
// declaring the right it requires (Routes lists them): hubsim's server puts
// them on its one mux next to the hubs' and the admin API's. The device
// routes carry each ID scope as a literal first segment, so an ID scope
// must be letters and digits and not a service collection's name. A
// fallback rewrites the other spellings DPS accepts (a scope or literal
// segment in another case, trailing slashes) and answers the rest with
// DPS's 404.
//
// # Models this simulator commits to
//
//   - ID scopes: every scope in Config.IDScopes names the same instance (one
//     enrollment list); the quota is kept per scope.
//   - hashed: rendezvous hashing of the registration ID over the linked hubs,
//     weighted by Config.HubWeights (default 1), so adding a hub moves only
//     the devices that land on it.
//   - geoLatency: the device's region is Config.DeviceRegions[registrationID],
//     else the region of the first Config.SourceRegions entry (IP or CIDR)
//     that matches the client address; the nearest hubs are the linked hubs
//     whose Config.HubRegions value equals it; the device is hashed among
//     them. With no region match, it is hashed among all linked hubs.
//   - custom: the webhook is called on every register request (initial and
//     reprovisioning), with the AllocationRequest documented in
//     MicrosoftDocs/azure-docs articles/iot-dps/concepts-custom-allocation.md.
//   - Reprovisioning (MicrosoftDocs/azure-docs
//     articles/iot-dps/concepts-device-reprovision.md): see registerLocked.
//     Substatus reprovisionedToInitialAssignment is reported when the device
//     moves back to a hub it was assigned to before (models.tsp: "re-provisioned
//     to a previously assigned IoT hub"); a stay on the same hub keeps the
//     previous substatus except for a reset, which reports deviceDataReset.
//   - Quota: a sliding window (Quota.Window, default one minute) per ID scope
//     with reservations. A device refused with 429 is given a slot in the
//     future and told the whole number of seconds until it; if it comes back
//     no earlier, it is admitted. Admissions are spaced so that any window
//     holds at most Quota.PerWindow + Quota.Burst requests.
package dps
