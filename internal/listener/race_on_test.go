//go:build race

package listener_test

// raceDetector: the race detector slows every goroutine, lock and syscall
// several times over; volume tests scale down under it.
const raceDetector = true
