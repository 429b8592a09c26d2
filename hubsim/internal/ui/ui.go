package ui

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/admin"
)

//go:embed assets
var assets embed.FS

// Prefix is where the dashboard lives.
const Prefix = "/hubsim/ui/"

// Devices is what the dashboard needs from the hubs' registries beyond
// admin.Hubs: listing, twins, desired properties and device status.
type Devices interface {
	// List returns the hub's devices whose id contains match (all when
	// match is empty), sorted by id, at most limit of them, and how many
	// matched in all.
	List(ctx context.Context, host, match string, limit int) ([]Device, int, error)
	// Twin returns the device twin as JSON.
	Twin(ctx context.Context, host, id string) (json.RawMessage, error)
	// UpdateDesired merges patch into the twin's desired properties.
	UpdateDesired(ctx context.Context, host, id string, patch map[string]any) error
	// SetEnabled enables or disables the device.
	SetEnabled(ctx context.Context, host, id string, enabled bool) error
	// Query runs an IoT Hub query (SELECT … FROM devices …) and returns
	// at most limit result documents.
	Query(ctx context.Context, host, text string, limit int) ([]json.RawMessage, error)
	// InvokeMethod calls a direct method on the device and returns its
	// status and JSON payload.
	InvokeMethod(ctx context.Context, host, id, method string, payload json.RawMessage, timeout time.Duration) (int, json.RawMessage, error)
}

// Device is one row of the device list.
type Device struct {
	ID           string
	Enabled      bool
	Connected    bool
	LastActivity time.Time
}

// Provisioning is what the DPS page needs beyond admin.DPS's counters.
// The lists are JSON arrays in the DPS service API's shapes; the page
// reads ids, policies and outcomes from them and never shows attestation
// keys.
type Provisioning interface {
	Enrollments() any
	EnrollmentGroups() any
	Registrations() any
	// Quota is the registration limit per ID scope and its window; a zero
	// limit means none.
	Quota() (limit int, window time.Duration)
}

// Streams is what the dashboard needs from the streaming endpoint.
type Streams interface {
	// StreamStats returns streams open now and the totals since start.
	StreamStats() StreamStats
	// Open lists the streams that have not ended, oldest first.
	Open() []OpenStream
	// History returns recent DeviceStreams log lines (JSON), newest first.
	History() [][]byte
}

// OpenStream is one live stream.
type OpenStream struct {
	Hub, DeviceID, ModuleID, Name string
	// Policy is the shared access policy (skn) of the service request
	// that asked for the stream.
	Policy                        string
	Created, Connected            time.Time
	BytesToDevice, BytesToService int64
}

// StreamStats are the streaming endpoint's counters over every hub.
type StreamStats struct {
	Open, Total                                int64
	BytesDeviceToService, BytesServiceToDevice int64
}

// Config wires the dashboard to the simulator; nil components show as
// unavailable.
type Config struct {
	Hubs         admin.Hubs
	DPS          admin.DPS
	Faults       *admin.Faults
	Devices      Devices
	Provisioning Provisioning
	Streams      Streams
	// Auth checks the credential typed into the login form; required.
	Auth   *admin.Authorizer
	Logger *slog.Logger
	Now    func() time.Time
	// SampleEvery is the chart sampling period (default 1 s); History the
	// number of samples kept (default 300: five minutes).
	SampleEvery time.Duration
	History     int
}

// UI is the dashboard. Start begins sampling the counters for the
// charts; Close stops it.
type UI struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	pages map[string]*template.Template
	sess  *sessions

	mu      sync.Mutex
	samples []Sample // oldest first, at most cfg.History

	startOnce sync.Once
	cancel    context.CancelFunc
	done      chan struct{}
}

// New returns the dashboard for cfg.
func New(cfg Config) (*UI, error) {
	if cfg.Auth == nil {
		return nil, errors.New("ui: no Authorizer")
	}
	if cfg.SampleEvery <= 0 {
		cfg.SampleEvery = time.Second
	}
	if cfg.History <= 0 {
		cfg.History = 300
	}
	u := &UI{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	if u.now == nil {
		u.now = time.Now
	}
	u.sess = newSessions(u.now)
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	u.pages = pages
	return u, nil
}

// Start samples the counters every SampleEvery until Close.
func (u *UI) Start() {
	u.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		u.cancel, u.done = cancel, make(chan struct{})
		go u.sampleLoop(ctx)
	})
}

// Close stops sampling and waits for the sampler to end.
func (u *UI) Close() error {
	u.startOnce.Do(func() {}) // a later Start does nothing
	if u.cancel != nil {
		u.cancel()
		<-u.done
	}
	return nil
}

func (u *UI) sampleLoop(ctx context.Context) {
	defer close(u.done)
	t := time.NewTicker(u.cfg.SampleEvery)
	defer t.Stop()
	u.sample()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			u.sample()
		}
	}
}

// RegisterRoutes puts the dashboard on mux. Every page but the login form
// needs a session.
func (u *UI) RegisterRoutes(mux *http.ServeMux) {
	static, _ := fs.Sub(assets, "assets/static")
	mux.Handle("GET "+Prefix+"static/", http.StripPrefix(Prefix+"static/", cacheStatic(http.FileServerFS(static))))
	mux.HandleFunc("GET "+Prefix+"login", u.loginForm)
	mux.HandleFunc("POST "+Prefix+"login", u.login)
	mux.Handle("POST "+Prefix+"logout", u.mutating(u.logout))
	// hubsim's router trims trailing slashes from /hubsim/… paths (the
	// hub's APIs ignore them), so the overview answers both spellings.
	mux.Handle("GET "+Prefix+"{$}", u.page(u.overview))
	mux.Handle("GET "+strings.TrimSuffix(Prefix, "/"), u.page(u.overview))
	mux.Handle("GET "+Prefix+"live", u.page(u.live))
	mux.Handle("GET "+Prefix+"devices", u.page(u.devices))
	mux.Handle("GET "+Prefix+"devices/{host}/{id}", u.page(u.device))
	mux.Handle("POST "+Prefix+"devices/{host}/{id}/desired", u.mutating(u.desired))
	mux.Handle("POST "+Prefix+"devices/{host}/{id}/c2d", u.mutating(u.c2d))
	mux.Handle("POST "+Prefix+"devices/{host}/{id}/disconnect", u.mutating(u.disconnect))
	mux.Handle("POST "+Prefix+"devices/{host}/{id}/status", u.mutating(u.status))
	mux.Handle("POST "+Prefix+"devices/{host}/{id}/method", u.mutating(u.method))
	mux.Handle("GET "+Prefix+"dps", u.page(u.dps))
	mux.Handle("GET "+Prefix+"streams", u.page(u.streams))
	mux.Handle("GET "+Prefix+"events", u.page(u.events))
	mux.Handle("GET "+Prefix+"events/stream", u.page(u.eventStream))
	mux.Handle("GET "+Prefix+"faults", u.page(u.faults))
	mux.Handle("POST "+Prefix+"faults", u.mutating(u.addFault))
	mux.Handle("POST "+Prefix+"faults/clear", u.mutating(u.clearFault))
	mux.Handle(Prefix, u.page(func(w http.ResponseWriter, r *http.Request, s *session) {
		http.NotFound(w, r)
	}))
}

func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
