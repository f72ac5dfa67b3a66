//go:build race

package sam

// raceEnabled: built with -race (about 10× slower).
const raceEnabled = true
