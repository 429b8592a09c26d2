package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/porthole-iot/porthole/hubsim/fleetplan"
)

const fleetUsage = `usage: hubsim fleet plan [flags]

Simulates a fleet through the agent's real provisioning code and hubsim's
real DPS and hubs on a virtual clock, and prints when it converges, how
hard DPS's quota and the hubs' connection throttle bite, and the retries.

Without -plan and -event it compares the two default scenarios: 100,000
devices reprovisioning all at once, and in waves of 10,000 every 10 min.
`

// runFleet is `hubsim fleet plan`.
func runFleet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "plan" {
		fmt.Fprint(stderr, fleetUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("hubsim fleet plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, fleetUsage, "\nflags:\n"); fs.PrintDefaults() }
	planPath := fs.String("plan", "", "YAML plan file (scenarios: [...]); see hubsim/fleetplan.Scenario")
	outDir := fs.String("out", "out", "directory for fleet-plan.csv, fleet-plan.txt and the plots")
	noPlots := fs.Bool("no-plots", false, "write no plots")
	// One scenario from flags.
	event := fs.String("event", "", "one scenario: reprovision, boot or outage (instead of the default plan)")
	waves := fs.String("waves", "", "stage the event: SIZE/INTERVAL, e.g. 10000/10m")
	outage := fs.Duration("outage", 0, "outage length (event outage; default 5m)")
	lookupFirst := fs.Bool("lookup-first", false, "boot: ask DPS before connecting")
	noCache := fs.Bool("no-cache", false, "boot: no cached assignment (register)")
	quotaChange := fs.String("quota-change", "", "change the quota while running: AT=PER_MINUTE[,AT=PER_MINUTE], e.g. 30m=2000")
	// Overrides for every scenario.
	devices := fs.Int("devices", 0, "devices per scenario (default 100000)")
	seed := fs.Uint64("seed", 0, "random seed (default 1); the same seed gives the same CSV")
	quota := fs.Int("quota", 0, "DPS registrations per minute (default 1000)")
	hubs := fs.Int("hubs", 0, "linked hubs (default 2)")
	hubRate := fs.Float64("hub-rate", 0, "new device connections per second per hub (default 100; negative: unlimited)")
	mqtt := fs.Int("mqtt-percent", -1, "share of devices on MQTT to DPS, 0-100 (default 25)")
	waitX := fs.Duration("wait-x", 0, "report devices that waited longer than this (default 15m)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hubsim fleet plan: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return errUsage
	}

	if *event == "" {
		only := map[string]bool{"waves": true, "outage": true, "lookup-first": true, "no-cache": true, "quota-change": true}
		var misplaced []string
		fs.Visit(func(f *flag.Flag) {
			if only[f.Name] {
				misplaced = append(misplaced, "-"+f.Name)
			}
		})
		if len(misplaced) > 0 {
			fmt.Fprintf(stderr, "hubsim fleet plan: %s shape one scenario and need -event\n", strings.Join(misplaced, ", "))
			return errUsage
		}
	}
	var plan fleetplan.Plan
	var err error
	switch {
	case *planPath != "" && *event != "":
		fmt.Fprintln(stderr, "hubsim fleet plan: -plan and -event exclude each other")
		return errUsage
	case *planPath != "":
		if plan, err = fleetplan.LoadPlan(*planPath); err != nil {
			return err
		}
	case *event != "":
		sc := fleetplan.Scenario{Event: *event, Outage: *outage, LookupFirst: *lookupFirst, NoCache: *noCache}
		if *waves != "" {
			size, interval, ok := strings.Cut(*waves, "/")
			n, err1 := strconv.Atoi(size)
			d, err2 := time.ParseDuration(interval)
			if !ok || err1 != nil || err2 != nil {
				return fmt.Errorf("-waves %q: want SIZE/INTERVAL, e.g. 10000/10m", *waves)
			}
			sc.Waves = fleetplan.Waves{Size: n, Interval: d}
		}
		if *quotaChange != "" {
			for _, part := range strings.Split(*quotaChange, ",") {
				at, pm, ok := strings.Cut(part, "=")
				d, err1 := time.ParseDuration(at)
				n, err2 := strconv.Atoi(pm)
				if !ok || err1 != nil || err2 != nil {
					return fmt.Errorf("-quota-change %q: want AT=PER_MINUTE, e.g. 30m=2000", part)
				}
				sc.QuotaChanges = append(sc.QuotaChanges, fleetplan.QuotaChange{At: d, PerMinute: n})
			}
		}
		plan.Scenarios = []fleetplan.Scenario{sc}
	default:
		plan = fleetplan.DefaultPlan()
	}
	for i := range plan.Scenarios {
		sc := &plan.Scenarios[i]
		if *devices != 0 {
			sc.Devices = *devices
		}
		if *seed != 0 {
			sc.Seed = *seed
		}
		if *quota != 0 {
			sc.Quota.PerMinute = *quota
		}
		if *hubs != 0 {
			sc.Hubs = *hubs
		}
		if *hubRate != 0 {
			sc.HubConnectsPerSecond = *hubRate
		}
		if *mqtt >= 0 {
			sc.MQTTPercent = mqtt
		}
		if *waitX != 0 {
			sc.WaitedLongerThan = *waitX
		}
	}

	// A simulation's heap is large and lives to the end: collect less often.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	start := time.Now()
	results, err := runScenarios(ctx, plan.Scenarios)
	if err != nil {
		return err
	}
	wall := time.Since(start)

	table := fleetplan.Table(results) + fmt.Sprintf("\n%d scenarios in %s (wall), GOMAXPROCS %d\n", len(results), wall.Round(10*time.Millisecond), runtime.GOMAXPROCS(0))
	fmt.Fprint(stdout, table)
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*outDir, "fleet-plan.txt"), []byte(table), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(*outDir, "fleet-plan.csv"))
	if err != nil {
		return err
	}
	if err := fleetplan.WriteCSV(f, results); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	written := []string{filepath.Join(*outDir, "fleet-plan.txt"), filepath.Join(*outDir, "fleet-plan.csv")}
	if !*noPlots {
		paths, err := fleetplan.WritePlots(*outDir, results)
		if err != nil {
			return err
		}
		written = append(written, paths...)
	}
	fmt.Fprintf(stdout, "written: %s\n", strings.Join(written, " "))
	return nil
}

// runScenarios runs the scenarios side by side, at most GOMAXPROCS at a
// time; each is deterministic on its own.
func runScenarios(ctx context.Context, scs []fleetplan.Scenario) ([]*fleetplan.Result, error) {
	results := make([]*fleetplan.Result, len(scs))
	errs := make([]error, len(scs))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, sc := range scs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i], errs[i] = fleetplan.Run(ctx, sc)
		}()
	}
	wg.Wait()
	return results, errors.Join(errs...)
}
