package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Timestamp is a time the services report. It reads RFC 3339 with or
// without a zone (the hub writes "0001-01-01T00:00:00" for times that never
// happened); anything unreadable becomes the zero time rather than failing
// the whole response. It writes RFC 3339.
type Timestamp struct{ time.Time }

// MarshalJSON implements json.Marshaler.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	return json.Marshal(t.UTC().Format(time.RFC3339Nano))
}

// UnmarshalJSON implements json.Unmarshaler.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	t.Time = time.Time{}
	var s string
	if json.Unmarshal(b, &s) != nil {
		return nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if v, err := time.Parse(layout, s); err == nil {
			t.Time = v.UTC()
			return nil
		}
	}
	return nil
}

// SymmetricKey holds base64 keys. Its String hides them.
type SymmetricKey struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// String hides the keys.
func (SymmetricKey) String() string { return "SymmetricKey{…}" }

// X509Thumbprint holds certificate thumbprints (hex).
type X509Thumbprint struct {
	PrimaryThumbprint   string `json:"primaryThumbprint,omitempty"`
	SecondaryThumbprint string `json:"secondaryThumbprint,omitempty"`
}

// Authentication is how a device authenticates: Type "sas" with
// SymmetricKey, "selfSigned" with X509Thumbprint, or "certificateAuthority".
type Authentication struct {
	Type           string          `json:"type"`
	SymmetricKey   *SymmetricKey   `json:"symmetricKey,omitempty"`
	X509Thumbprint *X509Thumbprint `json:"x509Thumbprint,omitempty"`
}

// Device is a device identity in the hub's registry.
// [Azure/azure-iot-sdk-node service/src/service.json (definitions.Device)]
type Device struct {
	DeviceID                   string          `json:"deviceId"`
	GenerationID               string          `json:"generationId,omitempty"`
	ETag                       string          `json:"etag,omitempty"`
	ConnectionState            string          `json:"connectionState,omitempty"`
	Status                     string          `json:"status,omitempty"` // "enabled" or "disabled"
	StatusReason               string          `json:"statusReason,omitempty"`
	ConnectionStateUpdatedTime *Timestamp      `json:"connectionStateUpdatedTime,omitempty"`
	StatusUpdatedTime          *Timestamp      `json:"statusUpdatedTime,omitempty"`
	LastActivityTime           *Timestamp      `json:"lastActivityTime,omitempty"`
	CloudToDeviceMessageCount  int             `json:"cloudToDeviceMessageCount,omitempty"`
	Authentication             *Authentication `json:"authentication,omitempty"`
}

// TwinProperties are a twin's desired and reported properties, each with
// its "$version" and "$metadata".
type TwinProperties struct {
	Desired  map[string]any `json:"desired,omitempty"`
	Reported map[string]any `json:"reported,omitempty"`
}

// Twin is a device twin as the service sees it.
// [Azure/azure-iot-sdk-node service/src/service.json (definitions.Twin)]
type Twin struct {
	DeviceID         string         `json:"deviceId"`
	ModuleID         string         `json:"moduleId,omitempty"`
	ETag             string         `json:"etag,omitempty"`
	Version          int64          `json:"version,omitempty"`
	Status           string         `json:"status,omitempty"`
	ConnectionState  string         `json:"connectionState,omitempty"`
	LastActivityTime *Timestamp     `json:"lastActivityTime,omitempty"`
	Tags             map[string]any `json:"tags,omitempty"`
	Properties       TwinProperties `json:"properties"`
}

// TwinPatch changes a twin's tags and desired properties as a JSON merge
// patch: keys set to nil are removed, objects merge, other values replace.
// A nil map leaves that part alone.
type TwinPatch struct {
	Tags    map[string]any
	Desired map[string]any
}

// MarshalJSON renders {"tags":…,"properties":{"desired":…}}.
func (p TwinPatch) MarshalJSON() ([]byte, error) {
	type props struct {
		Desired map[string]any `json:"desired,omitempty"`
	}
	type doc struct {
		Tags       map[string]any `json:"tags,omitempty"`
		Properties *props         `json:"properties,omitempty"`
	}
	d := doc{Tags: p.Tags}
	if p.Desired != nil {
		d.Properties = &props{Desired: p.Desired}
	}
	return json.Marshal(d)
}

func checkID(what, id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty %s", ErrConfig, what)
	}
	return nil
}

// CreateDevice registers deviceID with symmetric-key (SAS) authentication;
// the hub generates the keys. It fails with ErrConflict when the device
// exists. The returned Device holds the keys: never log them.
// [Azure/azure-iot-sdk-node service/src/registry.ts (create: PUT /devices/{id}, no If-Match)]
func (c *Client) CreateDevice(ctx context.Context, deviceID string) (*Device, error) {
	if err := checkID("device id", deviceID); err != nil {
		return nil, err
	}
	return callJSON[Device](ctx, c.rest, "create device", deviceID, request{
		method:     http.MethodPut,
		path:       escapePath("devices", deviceID),
		apiVersion: apiVersionHub,
		body:       Device{DeviceID: deviceID, Status: "enabled", Authentication: &Authentication{Type: "sas"}},
	})
}

// GetDevice returns the registry entry of deviceID (ErrNotFound when there
// is none).
func (c *Client) GetDevice(ctx context.Context, deviceID string) (*Device, error) {
	if err := checkID("device id", deviceID); err != nil {
		return nil, err
	}
	return callJSON[Device](ctx, c.rest, "get device", deviceID,
		request{method: http.MethodGet, path: escapePath("devices", deviceID), apiVersion: apiVersionHub})
}

// DeleteDevice removes deviceID from the registry, unconditionally.
// [Azure/azure-iot-sdk-node service/src/registry.ts (delete: If-Match *)]
func (c *Client) DeleteDevice(ctx context.Context, deviceID string) error {
	if err := checkID("device id", deviceID); err != nil {
		return err
	}
	return c.rest.call(ctx, "delete device", deviceID,
		request{method: http.MethodDelete, path: escapePath("devices", deviceID), apiVersion: apiVersionHub, header: ifMatch("")})
}

// GetTwin returns the device's twin.
// [Azure/azure-iot-sdk-node service/src/registry.ts (getTwin: GET /twins/{id})]
func (c *Client) GetTwin(ctx context.Context, deviceID string) (*Twin, error) {
	if err := checkID("device id", deviceID); err != nil {
		return nil, err
	}
	return callJSON[Twin](ctx, c.rest, "get twin", deviceID,
		request{method: http.MethodGet, path: escapePath("twins", deviceID), apiVersion: apiVersionHub})
}

// UpdateTwin merges patch into the device's twin and returns the new twin.
// etag makes the update conditional (ErrPreconditionFailed when the twin
// changed since); "" or "*" updates unconditionally.
// [Azure/azure-iot-sdk-node service/src/registry.ts (updateTwin: PATCH /twins/{id} with If-Match)];
// the etag is sent quoted, as the C# client does
// [Azure/azure-iot-sdk-csharp iothub/service/src/HttpClientHelper.cs (InsertEtag)].
func (c *Client) UpdateTwin(ctx context.Context, deviceID string, patch TwinPatch, etag string) (*Twin, error) {
	if err := checkID("device id", deviceID); err != nil {
		return nil, err
	}
	return callJSON[Twin](ctx, c.rest, "update twin", deviceID, request{
		method:     http.MethodPatch,
		path:       escapePath("twins", deviceID),
		apiVersion: apiVersionHub,
		header:     ifMatch(strings.TrimSpace(etag)),
		body:       patch,
	})
}
