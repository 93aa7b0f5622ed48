//go:build race

package guard_test

// raceEnabled shortens the longest loops under the race detector, which
// makes each map and lock operation tens of times dearer.
const raceEnabled = true
