package fleetplan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"
)

// The events a scenario starts with at time zero.
const (
	// EventReprovision: every device is connected to its hub; then DPS's
	// linked hubs change and each device is told to reprovision (the
	// fleet moves; an enrollment group is rotated).
	EventReprovision = "reprovision"
	// EventBoot: devices power up (after a site-wide outage, a firmware
	// roll-out): with the assignment cached (straight to the hub, or a
	// DPS lookup first), or without (register).
	EventBoot = "boot"
	// EventOutage: every device is connected; the hubs drop them all and
	// refuse connections for Outage, then come back.
	EventOutage = "outage"
)

// Scenario is one fleet event to plan. Zero fields take the defaults
// named in their comments (withDefaults).
type Scenario struct {
	Name    string `yaml:"name"`
	Event   string `yaml:"event"`   // EventReprovision (default), EventBoot, EventOutage
	Devices int    `yaml:"devices"` // default 100,000
	Seed    uint64 `yaml:"seed"`    // default 1
	// Waves stage the event: Size devices every Interval (0: all at once).
	Waves Waves `yaml:"waves"`
	// Quota is DPS's registration quota per ID scope (default 1,000 per
	// minute, DPS's documented default per unit; burst hubsim's default
	// of a tenth of that).
	Quota Quota `yaml:"quota"`
	// QuotaChanges scale DPS while the scenario runs.
	QuotaChanges []QuotaChange `yaml:"quota_changes"`
	// Hubs is the number of linked hubs the devices are hashed over
	// (default 2).
	Hubs int `yaml:"hubs"`
	// HubConnectsPerSecond is each hub's device-connections throttle
	// (default 100, IoT Hub S1's documented minimum; negative: none).
	HubConnectsPerSecond float64 `yaml:"hub_connects_per_second"`
	// Outage is how long the hubs refuse connections (EventOutage;
	// default 5 minutes).
	Outage time.Duration `yaml:"outage"`
	// LookupFirst: booting devices ask DPS before connecting (EventBoot).
	LookupFirst bool `yaml:"lookup_first"`
	// NoCache: booting devices have no cached assignment and register
	// (EventBoot; what the socket-level fleet storm runs).
	NoCache bool `yaml:"no_cache"`
	// MQTTPercent is the share of devices that talk to DPS over MQTT, the
	// rest over HTTPS (default 25, as the fleet storm). Latency adds a
	// round trip per transport to every DPS call's result.
	MQTTPercent *int    `yaml:"mqtt_percent"`
	Latency     Latency `yaml:"latency"`
	// WaitedLongerThan is the X of "devices that waited longer than X"
	// (default 15 minutes): from a device's own start to its convergence.
	WaitedLongerThan time.Duration `yaml:"waited_longer_than"`
	// RetryCachedHubFor is the agent's hub failure window before it asks
	// DPS (0: the agent's default, 15 minutes).
	RetryCachedHubFor time.Duration `yaml:"retry_cached_hub_for"`
	// Horizon stops the simulation (default 24 hours); devices not
	// converged by then are reported.
	Horizon time.Duration `yaml:"horizon"`
}

// Waves stages an event.
type Waves struct {
	Size     int           `yaml:"size"`
	Interval time.Duration `yaml:"interval"`
}

// Quota is DPS's registration quota.
type Quota struct {
	PerMinute int `yaml:"per_minute"`
	Burst     int `yaml:"burst"` // 0: PerMinute/10; negative: none
}

// QuotaChange sets the quota At after the start.
type QuotaChange struct {
	At        time.Duration `yaml:"at"`
	PerMinute int           `yaml:"per_minute"`
}

// Latency is the round trip of one DPS call per transport.
type Latency struct {
	HTTPS time.Duration `yaml:"https"`
	MQTT  time.Duration `yaml:"mqtt"`
}

// Defaults.
const (
	DefaultDevices          = 100_000
	DefaultQuotaPerMinute   = 1000
	DefaultHubs             = 2
	DefaultHubConnects      = 100
	DefaultOutage           = 5 * time.Minute
	DefaultMQTTPercent      = 25
	DefaultWaitedLongerThan = 15 * time.Minute
	DefaultHorizon          = 24 * time.Hour
)

func (s Scenario) withDefaults() Scenario {
	if s.Event == "" {
		s.Event = EventReprovision
	}
	if s.Name == "" {
		s.Name = s.Event
	}
	if s.Devices == 0 {
		s.Devices = DefaultDevices
	}
	if s.Seed == 0 {
		s.Seed = 1
	}
	if s.Quota.PerMinute == 0 {
		s.Quota.PerMinute = DefaultQuotaPerMinute
	}
	if s.Hubs == 0 {
		s.Hubs = DefaultHubs
	}
	if s.HubConnectsPerSecond == 0 {
		s.HubConnectsPerSecond = DefaultHubConnects
	}
	if s.Outage == 0 {
		s.Outage = DefaultOutage
	}
	if s.MQTTPercent == nil {
		p := DefaultMQTTPercent
		s.MQTTPercent = &p
	}
	if s.WaitedLongerThan == 0 {
		s.WaitedLongerThan = DefaultWaitedLongerThan
	}
	if s.Horizon == 0 {
		s.Horizon = DefaultHorizon
	}
	return s
}

func (s Scenario) validate() error {
	var errs []error
	bad := func(f string, a ...any) {
		errs = append(errs, fmt.Errorf("scenario %q: "+f, append([]any{s.Name}, a...)...))
	}
	switch s.Event {
	case EventReprovision, EventBoot, EventOutage:
	default:
		bad("event %q: want %s, %s or %s", s.Event, EventReprovision, EventBoot, EventOutage)
	}
	if s.Devices < 1 || s.Devices > 10_000_000 {
		bad("devices %d: want 1 to 10,000,000", s.Devices)
	}
	if s.Waves.Size < 0 || s.Waves.Interval < 0 || (s.Waves.Size > 0) != (s.Waves.Interval > 0) {
		bad("waves: size and interval go together and must not be negative")
	}
	if s.Quota.PerMinute < 0 {
		bad("quota.per_minute %d must not be negative", s.Quota.PerMinute)
	}
	for i, c := range s.QuotaChanges {
		if c.At < 0 || c.PerMinute < 0 {
			bad("quota_changes[%d]: at and per_minute must not be negative", i)
		}
	}
	if s.Hubs < 1 || s.Hubs > 100 {
		bad("hubs %d: want 1 to 100", s.Hubs)
	}
	if p := *s.MQTTPercent; p < 0 || p > 100 {
		bad("mqtt_percent %d: want 0 to 100", p)
	}
	if s.Latency.HTTPS < 0 || s.Latency.MQTT < 0 || s.Outage < 0 || s.Horizon < 0 || s.WaitedLongerThan < 0 || s.RetryCachedHubFor < 0 {
		bad("durations must not be negative")
	}
	if s.LookupFirst && s.NoCache {
		bad("lookup_first needs a cache; no_cache has none")
	}
	return errors.Join(errs...)
}

// Plan is what a plan file holds: the scenarios to run and compare.
type Plan struct {
	Scenarios []Scenario `yaml:"scenarios"`
}

// DefaultPlan is the two scenarios `make bench` compares: a 100,000-device
// fleet reprovisioning all at once, and the same in waves of 10,000 every
// 10 minutes (the quota's rate).
func DefaultPlan() Plan {
	return Plan{Scenarios: []Scenario{
		{Name: "all-at-once", Event: EventReprovision},
		{Name: "staged", Event: EventReprovision, Waves: Waves{Size: 10_000, Interval: 10 * time.Minute}},
	}}
}

// LoadPlan reads a plan file; unknown fields are errors.
func LoadPlan(path string) (Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Plan{}, err
	}
	return ParsePlan(path, b)
}

// ParsePlan parses a plan; name labels errors.
func ParsePlan(name string, b []byte) (Plan, error) {
	var p Plan
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		return Plan{}, fmt.Errorf("%s: %w", name, err)
	}
	if len(p.Scenarios) == 0 {
		return Plan{}, fmt.Errorf("%s: no scenarios", name)
	}
	var errs []error
	for i := range p.Scenarios {
		p.Scenarios[i] = p.Scenarios[i].withDefaults()
		if err := p.Scenarios[i].validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return p, errors.Join(errs...)
}
