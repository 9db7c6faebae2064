package listener

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// WaitForClients is the first stage of a stop that waits for the app
// beside kproxy: Ready turns false at once, while every session keeps being
// served and new client connections are still accepted (an app that is
// shutting down opens connections for its last OffsetCommit or LeaveGroup).
// It returns as soon as no client connection is open (at once when none is
// open on entry) and none has been for quiet, or when ctx ends; the result
// is the number of client connections still open.
func (s *Server) WaitForClients(ctx context.Context, quiet time.Duration) int {
	s.leaving.Store(true)
	n := s.clientCount()
	if n == 0 {
		return 0
	}
	s.log.Info("waiting for clients to leave", zap.Int("clients", n), zap.Duration("quiet_period", quiet))
	var quietTimer <-chan time.Time
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			n := s.clientCount()
			s.log.Info("stopped waiting for clients", zap.Int("clients", n), zap.String("why", waitEndCause(ctx)))
			return n
		case <-quietTimer:
			if n := s.clientCount(); n > 0 { // a connection came and went within the same tick
				quietTimer = nil
				continue
			}
			s.log.Info("clients gone", zap.Duration("quiet_period", quiet))
			return 0
		case <-s.clientsChanged:
			switch n := s.clientCount(); {
			case n > 0:
				quietTimer = nil
			case quietTimer == nil:
				if timer == nil {
					timer = time.NewTimer(quiet)
				} else {
					timer.Reset(quiet)
				}
				quietTimer = timer.C
			}
		}
	}
}

func waitEndCause(ctx context.Context) string {
	if ctx.Err() == context.DeadlineExceeded {
		return "shutdown_timeout"
	}
	return "stop requested"
}

func (s *Server) clientCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// noteClients wakes WaitForClients after a client connection opened or
// closed; it never blocks.
func (s *Server) noteClients() {
	select {
	case s.clientsChanged <- struct{}{}:
	default:
	}
}
