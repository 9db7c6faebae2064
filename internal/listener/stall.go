package listener

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/kproxy/kproxy/internal/metrics"
)

// reasonUpstreamStalled: a broker stayed silent well past a request's own
// timeout (kproxy_session_closes_total{reason}).
const reasonUpstreamStalled = "upstream_stalled"

// A broker may legitimately hold a request for the request's own timeout
// (Fetch MaxWaitMillis, JoinGroup's rebalance timeout, Produce and admin
// TimeoutMillis; router.RequestTimeout) and answers anything else at once.
// One that stays silent limits.upstream_answer_grace past that is stuck; a
// client waiting on it through the proxy would wait forever, so the session
// is closed — the client sees a broken connection, as it would from a dead
// broker, and retries elsewhere.
//
// One watcher per server scans the answers sessions owe a few times per
// grace period; it sets no socket deadlines, so idle connections cost
// nothing (a deadline only while a request is in flight).

// stallTick is how often the watcher looks, for a given grace.
func stallTick(grace time.Duration) time.Duration {
	return min(max(grace/4, 10*time.Millisecond), time.Second)
}

func (s *Server) watchStalls() {
	s.accepts.Add(1)
	go func() {
		defer s.accepts.Done()
		grace := s.cfg.Limits.UpstreamAnswerGrace
		t := time.NewTicker(stallTick(grace))
		defer t.Stop()
		var sessions []*session
		for {
			select {
			case <-s.stopped:
				return
			case <-t.C:
			}
			if g := s.liveLimits.Load().UpstreamAnswerGrace; g != grace { // reloaded
				grace = g
				t.Reset(stallTick(grace))
			}
			s.mu.Lock()
			sessions = sessions[:0]
			for sess := range s.sessions {
				sessions = append(sessions, sess)
			}
			s.mu.Unlock()
			now := time.Now()
			for i, sess := range sessions {
				if err := sess.stalled(now, grace); err != nil {
					s.lim.hit(metrics.LimitUpstreamAnswerGrace, zap.Int32("broker", sess.broker), zap.Error(err))
					sess.close(reasonUpstreamStalled, err)
				}
				sessions[i] = nil
			}
		}
	}()
}

// stalled reports the first request the broker has held longer than its
// own timeout plus grace, counted from when it reached the head of its
// lane: a broker answers a connection's requests one at a time, so the
// requests pipelined behind it are not yet held.
func (s *session) stalled(now time.Time, grace time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	for _, l := range s.lanes {
		if l == nil || err != nil {
			continue
		}
		l.Head(func(sl *slot, since time.Time) {
			if held := now.Sub(since); held > sl.wait+grace {
				err = fmt.Errorf("broker held %s for %v, past its own timeout %v plus limits.upstream_answer_grace %v",
					s.pol.protocol.Name(sl.key), held.Round(time.Millisecond), sl.wait, grace)
			}
		})
	}
	return err
}
