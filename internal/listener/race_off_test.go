//go:build !race

package listener_test

// raceDetector: see race_on_test.go.
const raceDetector = false
