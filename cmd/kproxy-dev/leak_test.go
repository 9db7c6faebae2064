package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives its tests: every
// session, lane, listener and client must be torn down by cleanup.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
