package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives its tests: every
// session, lane, listener and client must be torn down by cleanup. The one
// exception is sarama's metrics library, which starts a process-wide meter
// ticker on first use and never stops it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
		goleak.Cleanup(func(int) { removeBinary() }))
}
