package doctor_test

import (
	"context"
	"os"

	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/agent/internal/doctor"
)

// ExampleRun is what `porthole-agent doctor` does: load the config, run
// the checks, print the checklist, exit non-zero on a failure.
func ExampleRun() {
	cfg, _, err := config.Load(config.DefaultPath)
	if err != nil {
		// `porthole-agent validate` explains config errors line by line.
		return
	}
	report := doctor.Run(context.Background(), cfg, doctor.Options{})
	_ = report.Write(os.Stdout)
	if !report.OK() {
		// The command exits with status 1 so scripts can tell.
		return
	}
}

// ExampleReport_Write shows the checklist a technician reads.
func ExampleReport_Write() {
	r := doctor.Report{Checks: []doctor.Check{
		{Name: "Config file", Status: doctor.StatusOK, Detail: "/etc/porthole/agent.yaml, mode 0600"},
		{Name: "Clock", Status: doctor.StatusFail,
			Detail: "the device's clock says 1970-01-01 00:01 UTC: this board has no battery-backed clock and has not set the time from the network yet",
			Fix:    "enable NTP or set the date with date -s"},
	}}
	_ = r.Write(os.Stdout)
	// Output:
	// [ ok ] Config file: /etc/porthole/agent.yaml, mode 0600
	// [FAIL] Clock: the device's clock says 1970-01-01 00:01 UTC: this board has no battery-backed clock and has not set the time from the network yet
	//        fix: enable NTP or set the date with date -s
	//
	// 1 failure, 0 warnings: the agent will not work until the failures are fixed.
}
