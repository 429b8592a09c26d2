package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/service"
	"github.com/porthole-iot/porthole/sdk/service/servicetest"
)

const hubHost = "hub-eu.local"

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func hubClient(t *testing.T, sim *hubsimtest.Sim) *service.Client {
	t.Helper()
	c, err := service.New(service.Config{
		ConnectionString: sim.HubConnectionString(hubHost),
		RootCAs:          sim.CAPool,
		DialContext:      sim.DialContext,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func startDevice(t *testing.T, sim *hubsimtest.Sim, id string, edit func(*servicetest.DeviceConfig)) *servicetest.Device {
	t.Helper()
	cfg := servicetest.DeviceConfig{
		HubHost: hubHost, DeviceID: id, Key: sim.CreateDevice(hubHost, id),
		TLSConfig: sim.TLSConfig(), DialContext: sim.DialContext,
	}
	if edit != nil {
		edit(&cfg)
	}
	d, err := servicetest.StartDevice(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// TestStreamsAgainstHubsim: accepted, rejected, offline and throttled stream
// requests through hubsim's REST API, broker and streaming endpoint.
func TestStreamsAgainstHubsim(t *testing.T) {
	sim := hubsimtest.New(t, hubsimtest.WithRelayConfig(func(c *hubsimtest.RelayConfig) { c.MaxConcurrent = 1 }))
	c := hubClient(t, sim)
	ctx := ctxT(t)
	dev := startDevice(t, sim, "dev1", func(c *servicetest.DeviceConfig) {
		c.Accept = func(name string) bool { return name == "ssh" }
	})

	conn, err := c.OpenStream(ctx, "dev1", "ssh")
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("through the relay and back")
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != string(msg) {
		t.Fatalf("echo %q %v", got, err)
	}

	// The hub allows one open stream: the next request is throttled.
	_, err = c.OpenStream(ctx, "dev1", "ssh")
	var se *service.Error
	if !errors.Is(err, service.ErrThrottled) || !errors.As(err, &se) || se.StatusCode != 429 {
		t.Errorf("second stream: %v", err)
	}
	if d := retry.Classify(err); d.Kind == retry.Permanent {
		t.Errorf("throttling classified permanent")
	}
	conn.Close()

	// Rejected by the device (it accepts only "ssh"). The relay frees the
	// first stream's slot asynchronously, so a throttled answer is retried.
	err = retry.Do(ctx, retry.Policy{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, MaxAttempts: 100},
		func(ctx context.Context) error {
			_, err := c.OpenStream(ctx, "dev1", "vnc")
			return err
		})
	if !errors.Is(err, service.ErrStreamRejected) {
		t.Errorf("rejected stream: %v", err)
	}
	if reqs := dev.Requests(); len(reqs) < 2 || reqs[0] != "ssh" || reqs[len(reqs)-1] != "vnc" {
		t.Errorf("device saw %v", reqs)
	}

	// A registered device that is not connected.
	sim.CreateDevice(hubHost, "dev2")
	_, err = c.OpenStream(ctx, "dev2", "ssh")
	if !errors.Is(err, service.ErrDeviceNotOnline) || !errors.As(err, &se) || se.ErrorCode != "DeviceNotOnline" {
		t.Errorf("offline: %v", err)
	}
	// An unknown device.
	if _, err := c.OpenStream(ctx, "nobody", "ssh"); !errors.Is(err, service.ErrNotFound) && !errors.Is(err, service.ErrDeviceNotOnline) {
		t.Errorf("unknown device: %v", err)
	}
}

func TestMethodsAgainstHubsim(t *testing.T) {
	sim := hubsimtest.New(t)
	c := hubClient(t, sim)
	ctx := ctxT(t)
	startDevice(t, sim, "dev1", func(c *servicetest.DeviceConfig) {
		c.Method = func(name string, payload []byte) (int, []byte) {
			if name != "reprovision" {
				return 404, []byte(`{"error":"no such method"}`)
			}
			return 200, append([]byte(`{"echo":`), append(payload, '}')...)
		}
	})
	status, resp, err := c.InvokeMethod(ctx, "dev1", "reprovision", map[string]string{"why": "test"}, 10*time.Second)
	if err != nil || status != 200 || string(resp) != `{"echo":{"why":"test"}}` {
		t.Fatalf("invoke: %d %s %v", status, resp, err)
	}
	status, resp, err = c.InvokeMethod(ctx, "dev1", "other", nil, 0)
	if err != nil || status != 404 || !json.Valid(resp) {
		t.Fatalf("unknown method: %d %s %v", status, resp, err)
	}
	sim.CreateDevice(hubHost, "dev2")
	if _, _, err := c.InvokeMethod(ctx, "dev2", "reprovision", nil, 0); !errors.Is(err, service.ErrDeviceNotOnline) {
		t.Errorf("offline: %v", err)
	}
}

func TestRegistryAgainstHubsim(t *testing.T) {
	sim := hubsimtest.New(t)
	c := hubClient(t, sim)
	ctx := ctxT(t)
	d, err := c.CreateDevice(ctx, "dev:1@lab")
	if err != nil {
		t.Fatal(err)
	}
	if d.DeviceID != "dev:1@lab" || d.Authentication == nil || d.Authentication.SymmetricKey == nil || d.Authentication.SymmetricKey.PrimaryKey == "" {
		t.Fatalf("created %+v", d)
	}
	if _, err := c.CreateDevice(ctx, "dev:1@lab"); !errors.Is(err, service.ErrConflict) {
		t.Errorf("duplicate: %v", err)
	}
	if g, err := c.GetDevice(ctx, "dev:1@lab"); err != nil || g.ETag == "" || g.ConnectionState != "Disconnected" {
		t.Errorf("get: %+v %v", g, err)
	}
	tw, err := c.GetTwin(ctx, "dev:1@lab")
	if err != nil || tw.ETag == "" {
		t.Fatalf("twin %+v %v", tw, err)
	}
	tw2, err := c.UpdateTwin(ctx, "dev:1@lab", service.TwinPatch{Tags: map[string]any{"site": "lab"}, Desired: map[string]any{"ssh": true}}, tw.ETag)
	if err != nil || tw2.Tags["site"] != "lab" || tw2.Properties.Desired["ssh"] != true || tw2.ETag == tw.ETag {
		t.Fatalf("update %+v %v", tw2, err)
	}
	if _, err := c.UpdateTwin(ctx, "dev:1@lab", service.TwinPatch{Tags: map[string]any{"site": "x"}}, tw.ETag); !errors.Is(err, service.ErrPreconditionFailed) {
		t.Errorf("stale etag: %v", err)
	}
	if err := c.DeleteDevice(ctx, "dev:1@lab"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetDevice(ctx, "dev:1@lab"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
}

func TestDPSAgainstHubsim(t *testing.T) {
	sim := hubsimtest.New(t)
	d, err := service.NewDPS(service.Config{
		ConnectionString: sim.DPSConnectionString(),
		RootCAs:          sim.CAPool,
		DialContext:      sim.DialContext,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := ctxT(t)
	e, err := d.PutEnrollment(ctx, service.IndividualEnrollment{
		RegistrationID: "dev-1",
		Attestation:    &service.AttestationMechanism{Type: service.AttestationSymmetricKey},
		IoTHubHostName: hubHost,
	})
	if err != nil {
		t.Fatal(err)
	}
	if e.ETag == "" || e.Attestation.SymmetricKey == nil || e.Attestation.SymmetricKey.PrimaryKey == "" {
		t.Fatalf("enrollment %+v", e)
	}
	got, err := d.GetEnrollment(ctx, "dev-1")
	if err != nil || got.RegistrationID != "dev-1" || got.ETag != e.ETag {
		t.Fatalf("get %+v %v", got, err)
	}
	got.ProvisioningStatus = "disabled"
	if _, err := d.PutEnrollment(ctx, *got); err != nil {
		t.Errorf("conditional update: %v", err)
	}
	if _, err := d.PutEnrollment(ctx, *got); !errors.Is(err, service.ErrPreconditionFailed) {
		t.Errorf("stale etag: %v", err)
	}
	g, err := d.PutEnrollmentGroup(ctx, service.EnrollmentGroup{
		EnrollmentGroupID: "fleet",
		Attestation: &service.AttestationMechanism{Type: service.AttestationSymmetricKey,
			SymmetricKey: &service.SymmetricKeyAttestation{PrimaryKey: hubsimtest.NewKey(t), SecondaryKey: hubsimtest.NewKey(t)}},
	})
	if err != nil || g.EnrollmentGroupID != "fleet" {
		t.Fatalf("group %+v %v", g, err)
	}
	if _, err := d.GetEnrollmentGroup(ctx, "fleet"); err != nil {
		t.Error(err)
	}
	if _, err := d.GetRegistration(ctx, "dev-1"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("registration of a device that never registered: %v", err)
	}
	if err := d.DeleteEnrollmentGroup(ctx, "fleet", ""); err != nil {
		t.Error(err)
	}
	if err := d.DeleteEnrollment(ctx, "dev-1", ""); err != nil {
		t.Error(err)
	}
	if _, err := d.GetEnrollment(ctx, "dev-1"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
}

// A dial seam that refuses everything proves the client never reaches past it.
func TestNoNetworkEscape(t *testing.T) {
	sim := hubsimtest.New(t)
	c, err := service.New(service.Config{
		ConnectionString: sim.HubConnectionString(hubHost),
		RootCAs:          sim.CAPool,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nil, errors.New("refused by test")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.GetDevice(ctxT(t), "x"); err == nil {
		t.Fatal("request succeeded without a network")
	}
}

// TestQueryAgainstHubsim: twin queries with WHERE, projections, GROUP BY
// and paging through hubsim's REST API.
func TestQueryAgainstHubsim(t *testing.T) {
	// The unsupported query at the end is recorded as unhandled, on purpose.
	sim := hubsimtest.New(t, hubsimtest.AllowUnhandled())
	c := hubClient(t, sim)
	ctx := ctxT(t)
	for i := range 7 {
		id := "q-dev-" + string(rune('a'+i))
		sim.CreateDevice(hubHost, id)
		site := "lab"
		if i%3 == 0 {
			site = "field"
		}
		if _, err := c.UpdateTwin(ctx, id, service.TwinPatch{Tags: map[string]any{"site": site, "rank": i}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	q := c.NewQuery("SELECT * FROM devices WHERE tags.site = 'lab' AND tags.rank >= 2", 2)
	var ids []string
	pages := 0
	for q.HasMore() {
		p, err := q.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		tw, err := p.Twins()
		if err != nil || p.ItemType != "twin" {
			t.Fatal(p.ItemType, err)
		}
		for _, x := range tw {
			ids = append(ids, x.DeviceID)
		}
	}
	if want := []string{"q-dev-c", "q-dev-e", "q-dev-f"}; !slices.Equal(ids, want) || pages != 2 {
		t.Fatalf("got %v in %d pages, want %v in 2", ids, pages, want)
	}
	items, err := c.QueryAll(ctx, "SELECT tags.site AS site, COUNT() AS n FROM devices GROUP BY tags.site", 0, 0)
	if got, _ := json.Marshal(items); err != nil || string(got) != `[{"site":"field","n":3},{"site":"lab","n":4}]` {
		t.Fatalf("group by: %s %v", got, err)
	}
	_, err = c.NewQuery("SELECT * FROM devices WHERE LOWER(deviceId) = 'x'", 0).Next(ctx)
	var se *service.Error
	if !errors.As(err, &se) || se.StatusCode != 400 || se.ErrorCode != "ArgumentInvalid" {
		t.Fatalf("unsupported function: %v", err)
	}
}
