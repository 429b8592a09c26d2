//go:build race

package broker

// raceEnabled: the race detector instruments every frame, so stack sizes
// measured under it say nothing about a normal build.
const raceEnabled = true
