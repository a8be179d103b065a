//go:build race

package codegen

// raceEnabled shrinks the single-goroutine volume tests under the race detector, which
// slows them tenfold and has nothing to find in them.
const raceEnabled = true
