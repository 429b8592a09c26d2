package hubsimtest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"testing"

	"github.com/porthole-iot/porthole/hubsim/internal/admin"
	"github.com/porthole-iot/porthole/hubsim/internal/dps"
	"github.com/porthole-iot/porthole/hubsim/internal/hub"
	"github.com/porthole-iot/porthole/hubsim/internal/relay"
)

// Types of the simulator's components, so tests outside hubsim/ can call
// and configure them.
type (
	// HubSet is every simulated hub (service side, MQTT personality).
	HubSet = hub.Set
	// IoTHub is one simulated hub: registry, twins, methods, C2D, streams.
	IoTHub = hub.Hub
	// HubDevice is a device identity in a hub registry.
	HubDevice = hub.Device
	// HubAuthentication is a device's authentication in a hub registry.
	HubAuthentication = hub.Authentication
	// HubSymmetricKey holds a device's keys.
	HubSymmetricKey = hub.SymmetricKey
	// HubConfig configures the hub set (clocks, timeouts) via WithHubConfig.
	HubConfig = hub.Config
	// DPSService is the simulated Device Provisioning Service.
	DPSService = dps.Service
	// DPSConfig configures the DPS (quota, faults, delays) via WithDPSConfig.
	DPSConfig = dps.Config
	// DPSQuota is the registration quota per ID scope.
	DPSQuota = dps.Quota
	// DPSFaults are the DPS fault hooks.
	DPSFaults = dps.Faults
	// IndividualEnrollment is a DPS individual enrollment.
	IndividualEnrollment = dps.IndividualEnrollment
	// EnrollmentGroup is a DPS enrollment group.
	EnrollmentGroup = dps.EnrollmentGroup
	// X509Attestation holds enrollment certificates.
	X509Attestation = dps.X509Attestation
	// CustomAllocationDefinition names a custom allocation webhook.
	CustomAllocationDefinition = dps.CustomAllocationDefinition
	// AttestationMechanism says how an enrolled device proves who it is.
	AttestationMechanism = dps.AttestationMechanism
	// SymmetricKeyAttestation holds enrollment keys.
	SymmetricKeyAttestation = dps.SymmetricKeyAttestation
	// ReprovisionPolicy is an enrollment's reprovisioning policy.
	ReprovisionPolicy = dps.ReprovisionPolicy
	// InitialTwin is an enrollment's initial twin.
	InitialTwin = dps.InitialTwin
	// HubModule is a module identity in a hub registry.
	HubModule = hub.Module
	// HubX509Thumbprint holds a self-signed device certificate's thumbprints.
	HubX509Thumbprint = hub.X509Thumbprint
	// HubTwin is a device twin as the service sees it.
	HubTwin = hub.Twin
	// HubTwinPatch changes tags and desired properties (IoTHub.UpdateTwin).
	HubTwinPatch = hub.TwinPatch
	// HubMethodRequest invokes a direct method (IoTHub.InvokeMethod).
	HubMethodRequest = hub.MethodRequest
	// HubMethodResult is a direct method's answer.
	HubMethodResult = hub.MethodResult
	// HubStreamRequest asks a device for a stream (IoTHub.RequestStream).
	HubStreamRequest = hub.StreamRequest
	// HubStreamResult is the device's answer to a stream request.
	HubStreamResult = hub.StreamResult
	// HubEvent is a telemetry message seen by the hub's event tap.
	HubEvent = hub.Event
	// C2DMessage is a cloud-to-device message (IoTHub.SendC2D).
	C2DMessage = hub.C2DMessage
	// Relay is the streaming endpoint.
	Relay = relay.Relay
	// RelayConfig configures the streaming endpoint via WithRelayConfig.
	RelayConfig = relay.Config
)

// WithDPSConfig edits the DPS configuration (quota, faults, clock) before
// the sim starts.
func WithDPSConfig(f func(*DPSConfig)) Option {
	return func(o *options) { o.sim.DPS = chain(o.sim.DPS, f) }
}

// WithFastDPS makes registrations finish on the register request: no
// assigning delay and no poll (dps.Config.FastAssign), so a test that
// provisions devices does not wait the ≥ 1 s poll interval Azure imposes.
func WithFastDPS() Option {
	return WithDPSConfig(func(c *DPSConfig) {
		c.AssignDelay = 0
		c.FastAssign = true
	})
}

// WithHubConfig edits the hub set's configuration before the sim starts.
func WithHubConfig(f func(*HubConfig)) Option {
	return func(o *options) { o.sim.Hub = chain(o.sim.Hub, f) }
}

// WithRelayConfig edits the streaming endpoint's configuration before the
// sim starts.
func WithRelayConfig(f func(*RelayConfig)) Option {
	return func(o *options) { o.sim.Relay = chain(o.sim.Relay, f) }
}

func chain[T any](first, then func(*T)) func(*T) {
	if first == nil {
		return then
	}
	return func(v *T) { first(v); then(v) }
}

// Hubs returns the simulated hubs. It fails the test when the sim runs with
// a custom Assembler.
func (s *Sim) Hubs() *HubSet {
	s.tb.Helper()
	s.requireParts()
	return s.parts.Hubs
}

// Hub returns the hub with this host name, failing the test when there is none.
func (s *Sim) Hub(hostName string) *IoTHub {
	s.tb.Helper()
	s.requireParts()
	h, ok := s.parts.Hubs.Hub(hostName)
	if !ok {
		s.tb.Fatalf("hubsimtest: no hub %q (hubs: %v)", hostName, s.HubHostNames)
	}
	return h
}

// DPS returns the simulated Device Provisioning Service.
func (s *Sim) DPS() *DPSService {
	s.tb.Helper()
	s.requireParts()
	return s.parts.DPS
}

// Relay returns the streaming endpoint.
func (s *Sim) Relay() *Relay {
	s.tb.Helper()
	s.requireParts()
	return s.parts.Relay
}

func (s *Sim) requireParts() {
	s.tb.Helper()
	if s.parts == nil {
		s.tb.Fatal("hubsimtest: this sim runs a custom Assembler; its components are not available")
	}
}

// NewKey returns a random base64 key of the size Azure generates (32 bytes).
func NewKey(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		tb.Fatalf("hubsimtest: %v", err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// CreateDevice creates a symmetric-key device on the hub with this host
// name and returns its primary key.
func (s *Sim) CreateDevice(hostName, deviceID string) string {
	s.tb.Helper()
	key := NewKey(s.tb)
	_, err := s.Hub(hostName).CreateDevice(context.Background(), hub.Device{
		DeviceID: deviceID,
		Authentication: &hub.Authentication{
			Type:         hub.AuthSAS,
			SymmetricKey: &hub.SymmetricKey{PrimaryKey: key, SecondaryKey: NewKey(s.tb)},
		},
	})
	if err != nil {
		s.tb.Fatalf("hubsimtest: create device %q on %s: %v", deviceID, hostName, err)
	}
	return key
}

// DeviceConnectionString is the connection string of a symmetric-key device.
func (s *Sim) DeviceConnectionString(hostName, deviceID, key string) string {
	return "HostName=" + hostName + ";DeviceId=" + deviceID + ";SharedAccessKey=" + key
}

// newSymmetricKeyAttestation returns a symmetric-key attestation with two
// fresh keys, and its primary key.
func newSymmetricKeyAttestation(tb testing.TB) (*dps.AttestationMechanism, string) {
	tb.Helper()
	key := NewKey(tb)
	return &dps.AttestationMechanism{
		Type:         dps.AttestationSymmetricKey,
		SymmetricKey: &dps.SymmetricKeyAttestation{PrimaryKey: key, SecondaryKey: NewKey(tb)},
	}, key
}

// EnrollSymmetricKey creates an individual symmetric-key enrollment for
// registrationID in the DPS, edited by edit if non-nil (allocation,
// reprovision policy, initial twin…), and returns the device key.
func (s *Sim) EnrollSymmetricKey(registrationID string, edit func(*IndividualEnrollment)) string {
	s.tb.Helper()
	att, key := newSymmetricKeyAttestation(s.tb)
	e := dps.IndividualEnrollment{
		RegistrationID: registrationID,
		Attestation:    att,
	}
	if edit != nil {
		edit(&e)
	}
	if _, err := s.DPS().PutEnrollment(e); err != nil {
		s.tb.Fatalf("hubsimtest: enroll %q: %v", registrationID, err)
	}
	return key
}

// EnrollGroupSymmetricKey creates a symmetric-key enrollment group, edited
// by edit if non-nil, and returns the group's primary key (devices derive
// their keys from it).
func (s *Sim) EnrollGroupSymmetricKey(groupID string, edit func(*EnrollmentGroup)) string {
	s.tb.Helper()
	att, key := newSymmetricKeyAttestation(s.tb)
	g := dps.EnrollmentGroup{
		EnrollmentGroupID: groupID,
		Attestation:       att,
	}
	if edit != nil {
		edit(&g)
	}
	if _, err := s.DPS().PutEnrollmentGroup(g); err != nil {
		s.tb.Fatalf("hubsimtest: enroll group %q: %v", groupID, err)
	}
	return key
}

// Fault injection. A Fault switched on with AddFault (or POST
// /hubsim/faults) makes the hubs or the streaming endpoint misbehave for
// the devices it names until ClearFault; the hooks behind them
// (HubFaults, RelayFaults, set with WithHubConfig / WithRelayConfig) take
// any Go function instead, replacing the declarative faults.
type (
	// Fault is one declarative fault (kind, hub, device, parameters).
	Fault = admin.Fault
	// FaultKind names a fault.
	FaultKind = admin.Kind
	// FaultDuration is a duration that JSON reads and writes as "2s".
	FaultDuration = admin.Duration
	// HubFaults are the hubs' fault hooks (HubConfig.Faults).
	HubFaults = hub.Faults
	// RelayFaults are the streaming endpoint's fault hooks (RelayConfig.Faults).
	RelayFaults = relay.Faults
)

// Fault kinds (see admin.Kind* and README.md).
const (
	FaultRefuseConnect  = admin.KindRefuseConnect
	FaultDropConnection = admin.KindDropConnection
	FaultThrottleREST   = admin.KindThrottleREST
	FaultDelayStream    = admin.KindDelayStream
	FaultRejectStream   = admin.KindRejectStream
	FaultCutStream      = admin.KindCutStream
	FaultStallStream    = admin.KindStallStream
	FaultDelayAck       = admin.KindDelayAck
)

// AddFault switches f on and returns it with its id; it fails the test
// when f is invalid.
func (s *Sim) AddFault(f Fault) Fault {
	s.tb.Helper()
	s.requireParts()
	f, err := s.parts.Faults.Add(f)
	if err != nil {
		s.tb.Fatalf("hubsimtest: %v", err)
	}
	return f
}

// ClearFault switches the fault with this id off.
func (s *Sim) ClearFault(id string) {
	s.tb.Helper()
	s.requireParts()
	if !s.parts.Faults.Clear(id) {
		s.tb.Fatalf("hubsimtest: no active fault %q", id)
	}
}

// Faults lists the active faults.
func (s *Sim) Faults() []Fault {
	s.tb.Helper()
	s.requireParts()
	return s.parts.Faults.List()
}
