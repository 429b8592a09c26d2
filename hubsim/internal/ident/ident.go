// Package ident holds the few plain types that hubsim's DPS and hub
// components exchange: a device identity as DPS creates it on the hub it
// assigns, and a twin as it moves between hubs on reprovisioning.
package ident

// Auth types as the IoT Hub registry names them.
const (
	AuthSAS                  = "sas"
	AuthSelfSigned           = "selfSigned"
	AuthCertificateAuthority = "certificateAuthority"
)

// Auth is a device's authentication in a hub registry.
type Auth struct {
	Type                string // AuthSAS, AuthSelfSigned or AuthCertificateAuthority
	PrimaryKey          string // base64, for AuthSAS
	SecondaryKey        string
	PrimaryThumbprint   string // hex SHA-1 or SHA-256 of the DER cert, for AuthSelfSigned
	SecondaryThumbprint string
}

// Device is a device identity to create or update on a hub.
type Device struct {
	DeviceID string
	Auth     Auth
	// EdgeEnabled mirrors the enrollment's capabilities.iotEdge.
	EdgeEnabled bool
}

// Twin is the movable part of a device twin.
type Twin struct {
	Tags     map[string]any
	Desired  map[string]any // without $version / $metadata
	Reported map[string]any // without $version / $metadata
}

// Hubs is what DPS needs from the hubs it links to. hub.Set implements it.
type Hubs interface {
	// HostNames lists the linked hubs' host names, in configuration order.
	HostNames() []string
	// UpsertDevice creates the device on hub (enabled), or updates its auth.
	UpsertDevice(hub string, d Device) error
	// RemoveDevice deletes the device from hub; deleting a missing device is not an error.
	RemoveDevice(hub, deviceID string) error
	// ExportTwin returns the device's twin on hub, ok=false when there is no such device.
	ExportTwin(hub, deviceID string) (t Twin, ok bool)
	// ImportTwin replaces the device's tags, desired and reported properties on hub
	// (versions advance; connected devices get the desired patch).
	ImportTwin(hub, deviceID string, t Twin) error
}
