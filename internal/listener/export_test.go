package listener

import (
	"context"
	"net"
)

// ServeForTest serves conn as a client connection accepted on the
// bootstrap port, without listeners or upstream discovery: the fuzzer
// feeds sessions over in-memory pipes.
func (s *Server) ServeForTest(conn net.Conn) {
	s.ready.Store(true)
	s.startSession(conn, bootstrapNode)
}

// WatchStallsForTest starts the stall watcher Start would start.
func (s *Server) WatchStallsForTest() { s.watchStalls() }

var ClientIDLabel = clientIDLabel

// BufferedPeakForTest is the most limits.max_buffered_bytes has held.
func (s *Server) BufferedPeakForTest() int64 { return s.budget.Peak() }

// BufferedForTest is what limits.max_buffered_bytes holds now.
func (s *Server) BufferedForTest() int64 { return s.budget.Used() }

// DiscoverForTest fetches the brokers now, as watchCluster does.
func (s *Server) DiscoverForTest(ctx context.Context) error { return s.discover(ctx) }
