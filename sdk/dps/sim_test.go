package dps

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/auth"
	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/retry/retrytest"
)

// Tests in this file run the client against hubsim (the whole simulated
// service side) on loopback. Host names are the sim's (they do not
// resolve); Config.DialContext maps them to its listeners, and any other
// destination is refused.

var allTransports = []string{TransportHTTPS, TransportMQTT, TransportMQTTWS}

func simConfig(sim *hubsimtest.Sim, transport, regID string, clk retry.Clock) Config {
	return Config{
		GlobalEndpoint: sim.GlobalEndpoint,
		IDScope:        sim.IDScope,
		RegistrationID: regID,
		Transport:      transport,
		RootCAs:        sim.CAPool,
		DialContext:    sim.DialContext,
		Retry:          exactPolicy(clk),
		RequestTimeout: 20 * time.Second,
	}
}

// enrolledConfig enrolls regID with a symmetric key (mod, when not nil,
// edits the enrollment first) and returns a config that registers it over
// transport.
func enrolledConfig(sim *hubsimtest.Sim, transport, regID string, clk retry.Clock, mod func(*hubsimtest.IndividualEnrollment)) Config {
	cfg := simConfig(sim, transport, regID, clk)
	cfg.SymmetricKey = sim.EnrollSymmetricKey(regID, mod)
	return cfg
}

// customAllocation points an enrollment at the allocation webhook at url.
func customAllocation(t *testing.T, url string) func(*hubsimtest.IndividualEnrollment) {
	return func(e *hubsimtest.IndividualEnrollment) {
		e.AllocationPolicy = "custom"
		fromJSON(t, map[string]any{"webhookUrl": url, "apiVersion": "2021-10-01"}, &e.CustomAllocationDefinition)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkAssigned asserts that res names a hub of the sim that really has the
// device, and that Lookup reports the same assignment.
func checkAssigned(t *testing.T, sim *hubsimtest.Sim, c *Client, res *Result, regID string) {
	t.Helper()
	if !res.Assigned() || res.RegistrationID != regID || res.DeviceID != regID || res.Substatus != "initialAssignment" {
		t.Fatalf("result %+v", res)
	}
	if !slices.Contains(sim.HubHostNames, res.AssignedHub) {
		t.Fatalf("assigned hub %q is not one of %v", res.AssignedHub, sim.HubHostNames)
	}
	if res.CreatedAt.IsZero() || res.UpdatedAt.IsZero() || res.ETag == "" {
		t.Errorf("missing times or etag: %+v", res)
	}
	if _, err := sim.Hub(res.AssignedHub).GetDevice(context.Background(), res.DeviceID); err != nil {
		t.Errorf("device not on its hub: %v", err)
	}
	got, err := c.Lookup(testCtx(t))
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if got.AssignedHub != res.AssignedHub || got.DeviceID != res.DeviceID || got.Status != StatusAssigned || got.ETag != res.ETag {
		t.Errorf("lookup %+v, register %+v", got, res)
	}
}

func TestSimSymmetricKey(t *testing.T) {
	sim := hubsimtest.New(t)
	groupKey := sim.EnrollGroupSymmetricKey("fleet", nil)
	for _, tr := range allTransports {
		t.Run(tr+"/individual", func(t *testing.T) {
			regID := "ind-" + tr
			cfg := enrolledConfig(sim, tr, regID, newInstantClock(), nil)
			c := mustNew(t, cfg)
			res, err := c.Register(testCtx(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			checkAssigned(t, sim, c, res, regID)
		})
		t.Run(tr+"/group", func(t *testing.T) {
			regID := "grp-" + tr
			key, err := auth.DeriveGroupKey(groupKey, regID)
			if err != nil {
				t.Fatal(err)
			}
			cfg := simConfig(sim, tr, regID, newInstantClock())
			cfg.SymmetricKey = key
			c := mustNew(t, cfg)
			res, err := c.Register(testCtx(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			checkAssigned(t, sim, c, res, regID)
		})
	}
}

func TestSimX509(t *testing.T) {
	sim := hubsimtest.New(t)
	// A group whose signing certificate is the sim's CA admits every device
	// certificate the CA issues.
	var g hubsimtest.EnrollmentGroup
	fromJSON(t, map[string]any{
		"enrollmentGroupId": "x509-fleet",
		"attestation": map[string]any{"type": "x509", "x509": map[string]any{
			"signingCertificates": map[string]any{"primary": map[string]any{"certificate": string(sim.PKI.CAPEM())}},
		}},
	}, &g)
	if _, err := sim.DPS().PutEnrollmentGroup(g); err != nil {
		t.Fatal(err)
	}
	for _, tr := range allTransports {
		t.Run(tr+"/individual", func(t *testing.T) {
			regID := "x509-ind-" + tr
			cert := sim.SelfSignedCertificate(regID)
			var e hubsimtest.IndividualEnrollment
			fromJSON(t, map[string]any{
				"registrationId": regID,
				"attestation": map[string]any{"type": "x509", "x509": map[string]any{
					"clientCertificates": map[string]any{"primary": map[string]any{
						"certificate": base64.StdEncoding.EncodeToString(cert.Certificate[0]),
					}},
				}},
			}, &e)
			_, err := sim.DPS().PutEnrollment(e)
			if err != nil {
				t.Fatal(err)
			}
			cfg := simConfig(sim, tr, "", newInstantClock()) // registration ID from the CN
			cfg.Certificate = &cert
			c := mustNew(t, cfg)
			res, err := c.Register(testCtx(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			checkAssigned(t, sim, c, res, regID)
		})
		t.Run(tr+"/group", func(t *testing.T) {
			regID := "x509-grp-" + tr
			cert := sim.ClientCertificate(regID)
			cfg := simConfig(sim, tr, "", newInstantClock())
			cfg.Certificate = &cert
			c := mustNew(t, cfg)
			res, err := c.Register(testCtx(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			checkAssigned(t, sim, c, res, regID)
		})
		t.Run(tr+"/not enrolled", func(t *testing.T) {
			cert := sim.SelfSignedCertificate("stranger-" + tr)
			cfg := simConfig(sim, tr, "", newInstantClock())
			cfg.Certificate = &cert
			_, err := mustNew(t, cfg).Register(testCtx(t), nil)
			var se *StatusError
			if !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized {
				t.Fatalf("err %v, want a 401 StatusError", err)
			}
		})
	}
}

// fromJSON fills v (a hubsim enrollment) from its JSON form, which
// reaches the parts hubsimtest does not alias.
func fromJSON(t *testing.T, in any, v any) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func TestSimCustomPayload(t *testing.T) {
	// The custom allocation webhook sees the device's payload and returns
	// one for the device (MicrosoftDocs/azure-docs
	// articles/iot-dps/concepts-custom-allocation.md).
	var mu sync.Mutex
	seen := map[string]json.RawMessage{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			DeviceRuntimeContext struct {
				RegistrationID string          `json:"registrationId"`
				Payload        json.RawMessage `json:"payload"`
			} `json:"deviceRuntimeContext"`
			LinkedHubs []string `json:"linkedHubs"`
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &req); err != nil || len(req.LinkedHubs) == 0 {
			http.Error(w, "bad request", 400)
			return
		}
		mu.Lock()
		seen[req.DeviceRuntimeContext.RegistrationID] = req.DeviceRuntimeContext.Payload
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"iotHubHostName": req.LinkedHubs[len(req.LinkedHubs)-1],
			"payload":        map[string]any{"site": "plant-7", "for": req.DeviceRuntimeContext.RegistrationID},
		})
	}))
	defer hook.Close()
	sim := hubsimtest.New(t)
	for _, tr := range allTransports {
		t.Run(tr, func(t *testing.T) {
			regID := "custom-" + tr
			cfg := enrolledConfig(sim, tr, regID, newInstantClock(), customAllocation(t, hook.URL))
			res, err := mustNew(t, cfg).Register(testCtx(t), map[string]any{"model": "gw-1", "fw": 3})
			if err != nil {
				t.Fatal(err)
			}
			var out map[string]string
			if err := json.Unmarshal(res.Payload, &out); err != nil || out["site"] != "plant-7" || out["for"] != regID {
				t.Errorf("payload out %s (%v)", res.Payload, err)
			}
			if res.AssignedHub != sim.HubHostNames[len(sim.HubHostNames)-1] {
				t.Errorf("hub %q, the webhook chose the last one", res.AssignedHub)
			}
			mu.Lock()
			in := seen[regID]
			mu.Unlock()
			var got map[string]any
			if err := json.Unmarshal(in, &got); err != nil || got["model"] != "gw-1" || got["fw"] != float64(3) {
				t.Errorf("payload in %s (%v)", in, err)
			}
		})
	}
}

func TestSimDisabledEnrollment(t *testing.T) {
	sim := hubsimtest.New(t)
	for _, tr := range allTransports {
		t.Run(tr, func(t *testing.T) {
			regID := "off-" + tr
			cfg := enrolledConfig(sim, tr, regID, newInstantClock(), func(e *hubsimtest.IndividualEnrollment) {
				e.ProvisioningStatus = "disabled"
			})
			c := mustNew(t, cfg)
			res, err := c.Register(testCtx(t), nil)
			if !errors.Is(err, ErrDisabled) || res == nil || res.Status != StatusDisabled || res.Assigned() {
				t.Fatalf("res %+v err %v", res, err)
			}
			got, err := c.Lookup(testCtx(t))
			if err != nil || got.Status != StatusDisabled {
				t.Errorf("lookup %+v %v", got, err)
			}
		})
	}
}

func TestSimBadKey(t *testing.T) {
	sim := hubsimtest.New(t)
	for _, tr := range allTransports {
		t.Run(tr, func(t *testing.T) {
			regID := "badkey-" + tr
			sim.EnrollSymmetricKey(regID, nil)
			clk := newInstantClock()
			cfg := simConfig(sim, tr, regID, clk)
			cfg.SymmetricKey = hubsimtest.NewKey(t) // not the enrollment's
			_, err := mustNew(t, cfg).Register(testCtx(t), nil)
			var se *StatusError
			if !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized {
				t.Fatalf("err %v, want a 401 StatusError", err)
			}
			if tr == TransportHTTPS && se.ErrorCode != 401002 {
				t.Errorf("error code %d", se.ErrorCode)
			}
			if len(clk.Waits()) != 0 {
				t.Errorf("a 401 was retried: waits %v", clk.Waits())
			}
		})
	}
}

func TestSimLookupUnknown(t *testing.T) {
	sim := hubsimtest.New(t)
	for _, tr := range allTransports {
		regID := "fresh-" + tr
		cfg := enrolledConfig(sim, tr, regID, newInstantClock(), nil)
		_, err := mustNew(t, cfg).Lookup(testCtx(t))
		var se *StatusError
		if !errors.As(err, &se) || se.StatusCode != http.StatusNotFound {
			t.Errorf("%s: err %v, want 404 (enrolled, never registered)", tr, err)
		}
	}
}

// faultPlan answers the first n requests of each device with a fault.
type faultPlan struct {
	mu   sync.Mutex
	left map[string]int
}

// set makes the next n requests of regID faults.
func (p *faultPlan) set(regID string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.left[regID] = n
}

func (p *faultPlan) take(regID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.left[regID] > 0 {
		p.left[regID]--
		return true
	}
	return false
}

func TestSimThrottleAndServerErrors(t *testing.T) {
	throttle := &faultPlan{left: map[string]int{}}
	fail := &faultPlan{left: map[string]int{}}
	sim := hubsimtest.New(t, hubsimtest.WithDPSConfig(func(c *hubsimtest.DPSConfig) {
		c.Faults = &hubsimtest.DPSFaults{
			Throttle: func(regID string) (time.Duration, bool) { return 3 * time.Second, throttle.take(regID) },
			Fail5xx:  func(regID string) (int, bool) { return 503, fail.take(regID) },
		}
	}))
	for _, tr := range allTransports {
		t.Run(tr+"/429", func(t *testing.T) {
			regID := "thr-" + tr
			throttle.set(regID, 2)
			clk := newInstantClock()
			cfg := enrolledConfig(sim, tr, regID, clk, nil)
			c := mustNew(t, cfg)
			res, err := c.Register(testCtx(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			checkAssigned(t, sim, c, res, regID)
			// Two 429s with retry-after 3, then the poll interval (2 s).
			want := []time.Duration{3 * time.Second, 3 * time.Second, 2 * time.Second}
			if got := clk.Waits(); !slices.Equal(got, want) {
				t.Errorf("waits %v, want %v", got, want)
			}
		})
		t.Run(tr+"/503", func(t *testing.T) {
			regID := "err-" + tr
			fail.set(regID, 1)
			clk := newInstantClock()
			cfg := enrolledConfig(sim, tr, regID, clk, nil)
			res, err := mustNew(t, cfg).Register(testCtx(t), nil)
			if err != nil || !res.Assigned() {
				t.Fatalf("res %+v err %v", res, err)
			}
			want := []time.Duration{retry.DefaultMinBackoff, 2 * time.Second}
			if got := clk.Waits(); !slices.Equal(got, want) {
				t.Errorf("waits %v, want %v", got, want)
			}
		})
	}
}

func TestSimQuota(t *testing.T) {
	// One registration per minute per scope: the second device is told to
	// come back later, waits exactly that long on the fake clock and is
	// admitted because the sim's clock moves with it.
	clk := newInstantClock()
	sim := hubsimtest.New(t, hubsimtest.WithDPSConfig(func(c *hubsimtest.DPSConfig) {
		c.Quota = hubsimtest.DPSQuota{Limit: 1, Window: time.Minute, Burst: -1}
		c.Now = clk.Now
	}))
	var waits []time.Duration
	for i, regID := range []string{"quota-a", "quota-b"} {
		cfg := enrolledConfig(sim, TransportHTTPS, regID, clk, nil)
		cfg.Now = clk.Now
		before := len(clk.Waits())
		if _, err := mustNew(t, cfg).Register(testCtx(t), nil); err != nil {
			t.Fatalf("device %d: %v", i, err)
		}
		waits = clk.Waits()[before:]
	}
	// The second device: a 429 wait of some seconds ≤ one minute, then a
	// poll interval.
	if len(waits) != 2 || waits[0] < time.Second || waits[0] > time.Minute || waits[1] != 2*time.Second {
		t.Errorf("second device waits %v", waits)
	}
	if st := sim.DPS().Stats(); st.Throttled != 1 || st.Early != 0 {
		t.Errorf("sim stats: throttled %d early %d", st.Throttled, st.Early)
	}
}

func TestSimCancelMQTT(t *testing.T) {
	sim := hubsimtest.New(t)
	for _, tr := range []string{TransportMQTT, TransportMQTTWS} {
		t.Run(tr, func(t *testing.T) {
			regID := "cancel-" + tr
			clk := retrytest.NewClock(testNow)
			cfg := enrolledConfig(sim, tr, regID, clk, nil)
			// Wait until the client sleeps before its first poll, with the
			// MQTT connection open, then cancel.
			p, left, err := registerUntilWait(t, mustNew(t, cfg), clk)
			if err != nil || left != 2*time.Second {
				t.Fatalf("poll wait %v %v", left, err)
			}
			p.cancelAndWait(t)
		})
	}
}

func TestSimAllocationFailed(t *testing.T) {
	// A custom allocation webhook that refuses the device makes DPS finish
	// the registration as "failed" with an error code.
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not this one", http.StatusBadRequest)
	}))
	defer hook.Close()
	sim := hubsimtest.New(t)
	for _, tr := range allTransports {
		t.Run(tr, func(t *testing.T) {
			regID := "refused-" + tr
			cfg := enrolledConfig(sim, tr, regID, newInstantClock(), customAllocation(t, hook.URL))
			res, err := mustNew(t, cfg).Register(testCtx(t), nil)
			var re *RegistrationError
			if !errors.Is(err, ErrFailed) || !errors.As(err, &re) || res == nil {
				t.Fatalf("res %+v err %v", res, err)
			}
			if res.Status != StatusFailed || res.ErrorCode == 0 || res.ErrorMessage == "" || res.Assigned() {
				t.Errorf("result %+v", res)
			}
		})
	}
}
