package nodetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/hubsim/internal/hub"
	"github.com/porthole-iot/porthole/hubsim/internal/pki"
)

type connectResult struct {
	Sent    bool     `json:"sent"`
	Refused sdkError `json:"refused"`
}

// testConnect: azure-iot-device authentication cases — X.509 self-signed
// (thumbprint) and CA-signed devices over Mqtt and MqttWs, and refusals of
// a wrong certificate, a wrong key and a disabled device. deviceCA is a
// verified CA of hub A (startSim registers it).
func testConnect(t *testing.T, env *nodeEnv, sim *hubsimtest.Sim, deviceCA *testCA) {
	h := sim.Hub(hubA)
	ctx := ctxT(t)

	selfCert, selfKey, err := pki.SelfSigned("node-x509-self")
	if err != nil {
		t.Fatal(err)
	}
	caCert, caKey := deviceCA.issue(t, "node-x509-ca")
	mustCreate := func(d hub.Device) {
		t.Helper()
		if _, err := h.CreateDevice(ctx, d); err != nil {
			t.Fatalf("create %s: %v", d.DeviceID, err)
		}
	}
	mustCreate(hub.Device{DeviceID: "node-x509-self", Authentication: &hub.Authentication{
		Type:           hub.AuthSelfSigned,
		X509Thumbprint: &hub.X509Thumbprint{PrimaryThumbprint: sha256Thumbprint(t, selfCert)},
	}})
	mustCreate(hub.Device{DeviceID: "node-x509-ca", Authentication: &hub.Authentication{Type: hub.AuthCertificateAuthority}})
	sasKey := sim.CreateDevice(hubA, "node-sas-conn")
	disabledKey := sim.CreateDevice(hubA, "node-disabled")
	if err := h.SetStatus(ctx, "node-disabled", hub.StatusDisabled); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, device, transport string
		cs                      string
		cert, key               []byte
		refused                 bool
	}{
		{name: "x509-self-signed/Mqtt", device: "node-x509-self", transport: "Mqtt", cert: selfCert, key: selfKey},
		{name: "x509-self-signed/MqttWs", device: "node-x509-self", transport: "MqttWs", cert: selfCert, key: selfKey},
		{name: "x509-ca/Mqtt", device: "node-x509-ca", transport: "Mqtt", cert: caCert, key: caKey},
		{name: "x509-ca/MqttWs", device: "node-x509-ca", transport: "MqttWs", cert: caCert, key: caKey},
		{name: "x509-wrong-cert", device: "node-x509-self", transport: "Mqtt", cert: caCert, key: caKey, refused: true},
		{name: "wrong-key", transport: "Mqtt", cs: sim.DeviceConnectionString(hubA, "node-sas-conn", hubsimtest.NewKey(t)), refused: true},
		{name: "right-key", device: "node-sas-conn", transport: "Mqtt", cs: sim.DeviceConnectionString(hubA, "node-sas-conn", sasKey)},
		{name: "disabled-device", transport: "Mqtt", cs: sim.DeviceConnectionString(hubA, "node-disabled", disabledKey), refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := tt.cs
			if cs == "" {
				cs = "HostName=" + hubA + ";DeviceId=" + tt.device + ";x509=true"
			}
			marker := "c-" + tt.name + "-" + time.Now().UTC().Format("150405.000")
			events, cancel := h.Subscribe(16)
			defer cancel()
			var r connectResult
			if f := env.run(t, "connect.js", map[string]any{
				"connectionString": cs,
				"transport":        tt.transport,
				"certPEM":          string(tt.cert),
				"keyPEM":           string(tt.key),
				"marker":           marker,
				"expectRefusal":    tt.refused,
			}, &r); f != nil {
				t.Fatalf("connect.js failed: %s", f)
			}
			if tt.refused {
				// The SDK reports CONNACK "not authorized" as UnauthorizedError
				// [Azure/azure-iot-sdk-node common/transport/mqtt/src/mqtt_translate_error.ts].
				if r.Refused.UnexpectedSuccess || r.Refused.Name != "UnauthorizedError" {
					t.Errorf("open: %+v, want UnauthorizedError", r.Refused)
				}
				return
			}
			if !r.Sent {
				t.Fatalf("result %+v", r)
			}
			ev := waitEvent(t, events, func(ev hub.Event) bool { return ev.Properties["marker"] == marker })
			if ev.DeviceID != tt.device {
				t.Errorf("event from %q, want %q", ev.DeviceID, tt.device)
			}
		})
	}
}

func sha256Thumbprint(t *testing.T, certPEM []byte) string {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("no PEM certificate")
	}
	if _, err := x509.ParseCertificate(b.Bytes); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b.Bytes)
	return hex.EncodeToString(s[:])
}

// testCA is a device CA a customer would upload to the hub as verified.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "nodetest device CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// issue returns PEM certificate and key of a client certificate with
// subject CN cn.
func (ca *testCA) issue(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}
