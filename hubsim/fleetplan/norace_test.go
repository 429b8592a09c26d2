//go:build !race

package fleetplan

const raceEnabled = false
