//go:build !race

package fleetbench

const raceEnabled = false
