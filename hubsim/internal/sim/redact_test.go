package sim_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/hubsim/internal/simconfig"
	"github.com/porthole-iot/porthole/sdk/auth"
	"github.com/porthole-iot/porthole/sdk/iothub"
	"github.com/porthole-iot/porthole/sdk/service"
	"github.com/porthole-iot/porthole/sdk/service/servicetest"
)

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDebugLogsHoldNoCredentials runs the credential-bearing flows against
// the assembled sim at debug level — DPS registration with a good and a
// wrong token, MQTT connects with a good and a wrong key, a stream request
// and its relay connection, service REST with a wrong key — and greps every
// log line for the keys and tokens involved (issue 11, finding 5).
func TestDebugLogsHoldNoCredentials(t *testing.T) {
	var logs logBuffer
	sim := hubsimtest.New(t, hubsimtest.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hubHost := sim.HubHostNames[0]
	const wrongKey = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktMTIzNDU2Nzg5MA=="
	secrets := map[string]string{}

	// DPS over HTTPS: a good and a wrong registration token.
	enrollKey := sim.EnrollSymmetricKey("dev-r", nil)
	secrets["enrollment key"] = enrollKey
	for _, key := range []string{enrollKey, wrongKey} {
		tok, err := auth.DPSToken(sim.IDScope, "dev-r", key, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		secrets["dps token "+key[:4]] = tok
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "https://"+sim.GlobalEndpoint+"/"+sim.IDScope+"/registrations/dev-r/register?api-version=2021-06-01",
			strings.NewReader(`{"registrationId":"dev-r"}`))
		req.Header.Set("Authorization", tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := sim.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	// Hub MQTT: a device that serves streams, and a connect with a wrong key.
	devKey := sim.CreateDevice(hubHost, "dev1")
	secrets["device key"] = devKey
	dev, err := servicetest.StartDevice(ctx, servicetest.DeviceConfig{HubHost: hubHost, DeviceID: "dev1", Key: devKey,
		Port: sim.Config.Ports.MQTT, TLSConfig: sim.TLSConfig(), DialContext: sim.DialContext})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if c, err := iothub.Dial(ctx, iothub.Config{HostName: hubHost, DeviceID: "dev1", SharedAccessKey: wrongKey,
		RootCAs: sim.CAPool, DialContext: sim.DialContext}); err == nil {
		c.Close()
		t.Fatal("a wrong key connected")
	}

	// A stream through the relay, then service REST with a wrong key.
	svc, err := service.New(service.Config{ConnectionString: sim.HubConnectionString(hubHost), RootCAs: sim.CAPool, DialContext: sim.DialContext})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	grant, err := svc.RequestStream(ctx, "dev1", "ssh")
	if err != nil {
		t.Fatal(err)
	}
	secrets["service stream token"] = grant.Token
	conn, err := svc.OpenStream(ctx, "dev1", "ssh")
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	for _, p := range sim.Config.Hubs[0].Policies {
		secrets["policy key "+p.Name] = p.PrimaryKey
	}
	bad, err := service.New(service.Config{ConnectionString: "HostName=" + hubHost + ";SharedAccessKeyName=iothubowner;SharedAccessKey=" + wrongKey,
		RootCAs: sim.CAPool, DialContext: sim.DialContext})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := bad.RequestStream(ctx, "dev1", "ssh"); err == nil {
		t.Fatal("a wrong service key was accepted")
	}
	dev.Close()

	out := logs.String()
	if !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "stream") {
		t.Fatalf("the flows did not log at debug; the test checks nothing:\n%s", out)
	}
	for name, s := range secrets {
		if s == "" {
			continue
		}
		if strings.Contains(out, s) {
			t.Errorf("logs hold the %s", name)
		}
		if _, sig, ok := strings.Cut(s, "sig="); ok {
			sig, _, _ = strings.Cut(sig, "&")
			if strings.Contains(out, sig) {
				t.Errorf("logs hold the signature of the %s", name)
			}
		}
	}
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)(\$auth|sig|SharedAccessKey)=[^<&;\s"]`),
		regexp.MustCompile(`SharedAccessSignature\s+[^<]`),
	} {
		if m := re.FindString(out); m != "" {
			t.Errorf("logs hold credential material %q", m)
		}
	}
}

// The configured device-connections throttle reaches the hubs: at one
// connection per 100 s the second device is refused.
func TestDeviceConnectionThrottleConfigured(t *testing.T) {
	sim := hubsimtest.New(t, hubsimtest.WithConfig(func(c *simconfig.Config) { c.Limits.DeviceConnectionsPerSecond = 0.01 }))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hubHost := sim.HubHostNames[0]
	var errs []error
	for _, id := range []string{"d1", "d2"} {
		key := sim.CreateDevice(hubHost, id)
		c, err := iothub.Dial(ctx, iothub.Config{HostName: hubHost, DeviceID: id, SharedAccessKey: key, RootCAs: sim.CAPool, DialContext: sim.DialContext})
		if err == nil {
			defer c.Close()
		}
		errs = append(errs, err)
	}
	if errs[0] != nil || errs[1] == nil {
		t.Fatalf("connects at 0.01/s: %v", errs)
	}
}
