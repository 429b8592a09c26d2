package hub

import "time"

// Device is a device identity as the hub REST API carries it (camelCase JSON,
// field set of the data-plane "Device" definition
// [Azure/azure-iot-sdk-node service/src/service.json (api-version 2020-09-30), definitions.Device]).
// On create/update only DeviceID, Status, StatusReason, Authentication and
// Capabilities are read; the rest is output.
type Device struct {
	DeviceID                   string          `json:"deviceId"`
	GenerationID               string          `json:"generationId"`
	ETag                       string          `json:"etag"`
	ConnectionState            string          `json:"connectionState"`
	Status                     Status          `json:"status"`
	StatusReason               string          `json:"statusReason"`
	ConnectionStateUpdatedTime time.Time       `json:"connectionStateUpdatedTime"`
	StatusUpdatedTime          time.Time       `json:"statusUpdatedTime"`
	LastActivityTime           time.Time       `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int             `json:"cloudToDeviceMessageCount"`
	Authentication             *Authentication `json:"authentication,omitempty"`
	Capabilities               *Capabilities   `json:"capabilities,omitempty"`
}

// Module is a module identity [service.json definitions.Module].
type Module struct {
	ModuleID                   string          `json:"moduleId"`
	ManagedBy                  string          `json:"managedBy"`
	DeviceID                   string          `json:"deviceId"`
	GenerationID               string          `json:"generationId"`
	ETag                       string          `json:"etag"`
	ConnectionState            string          `json:"connectionState"`
	ConnectionStateUpdatedTime time.Time       `json:"connectionStateUpdatedTime"`
	LastActivityTime           time.Time       `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int             `json:"cloudToDeviceMessageCount"`
	Authentication             *Authentication `json:"authentication,omitempty"`
}

// Status is a device's registry status.
type Status string

// Registry statuses [service.json definitions.Device.status enum].
const (
	StatusEnabled  Status = "enabled"
	StatusDisabled Status = "disabled"
)

// Connection states [service.json definitions.Device.connectionState enum].
const (
	stateConnected    = "Connected"
	stateDisconnected = "Disconnected"
)

// Authentication types [service.json definitions.AuthenticationMechanism.type enum].
const (
	AuthSAS                  = "sas"
	AuthSelfSigned           = "selfSigned"
	AuthCertificateAuthority = "certificateAuthority"
	AuthNone                 = "none"
)

// Authentication is how a device or module authenticates
// [service.json definitions.AuthenticationMechanism].
type Authentication struct {
	Type           string          `json:"type"`
	SymmetricKey   *SymmetricKey   `json:"symmetricKey,omitempty"`
	X509Thumbprint *X509Thumbprint `json:"x509Thumbprint,omitempty"`
}

// SymmetricKey holds base64 keys [service.json definitions.SymmetricKey].
type SymmetricKey struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// X509Thumbprint holds hex SHA-1 or SHA-256 certificate thumbprints
// [service.json definitions.X509Thumbprint].
type X509Thumbprint struct {
	PrimaryThumbprint   string `json:"primaryThumbprint"`
	SecondaryThumbprint string `json:"secondaryThumbprint"`
}

// Capabilities [service.json definitions.DeviceCapabilities].
type Capabilities struct {
	IoTEdge bool `json:"iotEdge"`
}

// Twin is a device or module twin as the service sees it
// [service.json definitions.Twin]; Properties.Desired and .Reported carry
// "$metadata" and "$version".
type Twin struct {
	DeviceID                  string         `json:"deviceId"`
	ModuleID                  string         `json:"moduleId,omitempty"`
	ETag                      string         `json:"etag"`
	DeviceETag                string         `json:"deviceEtag"`
	Status                    Status         `json:"status"`
	StatusReason              string         `json:"statusReason,omitempty"`
	StatusUpdateTime          time.Time      `json:"statusUpdateTime"`
	ConnectionState           string         `json:"connectionState"`
	LastActivityTime          time.Time      `json:"lastActivityTime"`
	CloudToDeviceMessageCount int            `json:"cloudToDeviceMessageCount"`
	AuthenticationType        string         `json:"authenticationType"`
	X509Thumbprint            X509Thumbprint `json:"x509Thumbprint"`
	Capabilities              *Capabilities  `json:"capabilities,omitempty"`
	Version                   int64          `json:"version"`
	Tags                      map[string]any `json:"tags"`
	Properties                TwinProperties `json:"properties"`
}

// TwinProperties [service.json definitions.TwinProperties].
type TwinProperties struct {
	Desired  map[string]any `json:"desired"`
	Reported map[string]any `json:"reported"`
}

// TwinPatch is a service-side twin update: tags and desired properties,
// merged (PATCH) or replaced (PUT). A nil map leaves that part alone.
type TwinPatch struct {
	Tags    map[string]any
	Desired map[string]any
}

// MethodRequest is a direct method call [service.json definitions.CloudToDeviceMethod].
type MethodRequest struct {
	MethodName string `json:"methodName"`
	// Payload is raw JSON; empty means null.
	Payload                  []byte `json:"-"`
	ResponseTimeoutInSeconds int    `json:"responseTimeoutInSeconds,omitempty"`
	ConnectTimeoutInSeconds  int    `json:"connectTimeoutInSeconds,omitempty"`
}

// MethodResult is the device's answer [service.json definitions.CloudToDeviceMethodResult].
type MethodResult struct {
	Status int
	// Payload is raw JSON ("null" when the device sent none).
	Payload []byte
}

// StreamRequest asks a device to open a stream.
type StreamRequest struct {
	DeviceID string
	ModuleID string
	Name     string
	// Policy is the requesting shared access policy (skn), for the records.
	Policy string
	// ConnectTimeout bounds the relay handshake; zero means the relay default.
	ConnectTimeout time.Duration
	// ResponseTimeout bounds the wait for the device's answer; zero means 30 s.
	ResponseTimeout time.Duration
}

// StreamResult is the device's answer to a stream request.
type StreamResult struct {
	Accepted     bool
	StreamID     string
	URL          string // when accepted
	ServiceToken string // when accepted
}

// C2DMessage is a cloud-to-device message.
type C2DMessage struct {
	MessageID       string // generated when empty
	CorrelationID   string
	ContentType     string
	ContentEncoding string
	Properties      map[string]string
	Body            []byte
}

// Event is one telemetry message a device sent.
type Event struct {
	Hub        string            `json:"hub"`
	DeviceID   string            `json:"deviceId"`
	ModuleID   string            `json:"moduleId,omitempty"`
	Time       time.Time         `json:"time"`
	Topic      string            `json:"topic"`
	System     map[string]string `json:"system"`     // "$.ct" etc., with the "$." prefix
	Properties map[string]string `json:"properties"` // application properties
	Body       []byte            `json:"body"`
}
