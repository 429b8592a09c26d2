package config

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// The health and metrics sections (issue "Agent health where people
// look"): how often the agent reports its health in the device twin, and
// where it writes Prometheus metrics for node_exporter. Kept in this file
// so the sections other work adds do not collide with them.

// Defaults and bounds of the health and metrics sections.
const (
	// DefaultTwinInterval spaces the twin health patches: a busy device
	// must not spend its hub quota (device-to-cloud operations, reported
	// property updates count against it) on health.
	DefaultTwinInterval = 30 * time.Second
	// MinTwinInterval keeps a misconfigured device from patching its
	// twin more than once a second.
	MinTwinInterval = time.Second
	// DefaultMetricsInterval is how often metrics.textfile is rewritten;
	// node_exporter reads it on every scrape (15–60 s typically).
	DefaultMetricsInterval = 15 * time.Second
	// MinMetricsInterval bounds the flash writes of metrics.textfile.
	MinMetricsInterval = time.Second
)

// Health configures the twin health report.
type Health struct {
	// TwinInterval is the least time between two health patches of the
	// twin's reported properties; changes in between are coalesced.
	TwinInterval time.Duration
}

// Metrics configures the metrics the agent writes.
type Metrics struct {
	// Textfile is a directory (node_exporter's
	// --collector.textfile.directory) where the agent keeps
	// porthole_agent.prom current; "" writes none.
	Textfile string
	// Interval is how often the file is rewritten.
	Interval time.Duration
}

// healthFields are the leaf keys of the two sections (for allFields).
var healthFields = []string{"health.twin_interval", "metrics.textfile", "metrics.interval"}

func defaultHealth() Health   { return Health{TwinInterval: DefaultTwinInterval} }
func defaultMetrics() Metrics { return Metrics{Interval: DefaultMetricsInterval} }

func (d *decoder) health(field string, n *yaml.Node) {
	h := &d.cfg.Health
	d.mapping(n, field, []string{"twin_interval"}, map[string]fieldFunc{
		"twin_interval": d.setDuration(&h.TwinInterval, "30s"),
	})
}

func (d *decoder) metrics(field string, n *yaml.Node) {
	m := &d.cfg.Metrics
	d.mapping(n, field, []string{"textfile", "interval"}, map[string]fieldFunc{
		"textfile": d.setStr(&m.Textfile),
		"interval": d.setDuration(&m.Interval, "15s"),
	})
}

func (k *checker) healthMetrics() {
	c := k.c
	if c.Health.TwinInterval < MinTwinInterval {
		k.add("health.twin_interval", fmt.Sprintf("%s is too short", formatDuration(c.Health.TwinInterval)),
			fmt.Sprintf("expected at least %s (default %s)", formatDuration(MinTwinInterval), formatDuration(DefaultTwinInterval)))
	}
	if c.Metrics.Interval < MinMetricsInterval {
		k.add("metrics.interval", fmt.Sprintf("%s is too short", formatDuration(c.Metrics.Interval)),
			fmt.Sprintf("expected at least %s (default %s)", formatDuration(MinMetricsInterval), formatDuration(DefaultMetricsInterval)))
	}
}

// redactHealthMetrics writes the two sections for Redacted.
func (w *yamlWriter) healthMetrics(c *Config) {
	w.section(0, "health")
	w.str(1, "twin_interval", formatDuration(c.Health.TwinInterval))
	w.section(0, "metrics")
	w.str(1, "textfile", c.Metrics.Textfile)
	w.str(1, "interval", formatDuration(c.Metrics.Interval))
}

// healthMetricsChanges classifies changes of the two sections: they are
// read at start.
func healthMetricsChanges(ch *Change, old, new *Config) {
	if old.Health != new.Health {
		ch.Restart = append(ch.Restart, "health.twin_interval")
	}
	if old.Metrics.Textfile != new.Metrics.Textfile {
		ch.Restart = append(ch.Restart, "metrics.textfile")
	}
	if old.Metrics.Interval != new.Metrics.Interval {
		ch.Restart = append(ch.Restart, "metrics.interval")
	}
}
