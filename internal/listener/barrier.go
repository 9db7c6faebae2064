package listener

import (
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/kproxy/kproxy/internal/bufpool"
	"github.com/kproxy/kproxy/internal/router"
)

// Ordering barriers (docs/ARCHITECTURE.md, "Barriers"): a request whose
// outcome depends on an earlier request of another lane having been
// processed waits, before it is forwarded, until that request's answer is
// in. The reader waits, so nothing read after it overtakes it either; the
// wait lasts as long as the earlier request would have held it on a single
// connection, and no longer.

// sessionBarriers is a session's barrier state.
type sessionBarriers struct {
	// owed counts unanswered requests per earlier key
	// (router.Barriers.EarlierSlot): the reader checks them without the
	// lock, and only the reader raises them, so a zero it reads is true.
	owed []atomic.Int32

	waiting  bool          // the reader waits for an answer; guarded by session.mu
	answered chan struct{} // wakes the waiting reader
}

func newSessionBarriers(b *router.Barriers) sessionBarriers {
	return sessionBarriers{owed: make([]atomic.Int32, b.EarlierKeys()), answered: make(chan struct{}, 1)}
}

// scopeRequest notes, on the slot of a request that a later one may wait
// for, the group or transaction it names. Called by the reader before the
// request is forwarded.
func (s *session) scopeRequest(sl *slot, frame *bufpool.Buf, h router.RequestHeader) {
	if s.srv.barriers.Scoped(h.Key) {
		sl.scopes = s.srv.protocol.RequestScopes(frame.B[4:], h)
	}
}

// barrierPushed counts an earlier request that now owes an answer; s.mu
// held.
func (s *session) barrierPushed(sl *slot) {
	if i := s.srv.barriers.EarlierSlot(sl.key); i >= 0 {
		s.bar.owed[i].Add(1)
	}
}

// barrierAnswered counts its answer in and wakes a waiting reader; s.mu
// held.
func (s *session) barrierAnswered(sl *slot) {
	if i := s.srv.barriers.EarlierSlot(sl.key); i >= 0 {
		s.bar.owed[i].Add(-1)
		if s.bar.waiting {
			select {
			case s.bar.answered <- struct{}{}:
			default:
			}
		}
	}
}

// awaitBarriers holds the reader until no earlier request that h must
// follow is still unanswered. It reports false when the session closed
// meanwhile.
func (s *session) awaitBarriers(body []byte, h router.RequestHeader) bool {
	rules := s.srv.barriers.WaitsFor(h.Key)
	if !s.owesAny(rules) {
		return true
	}
	var scopes router.Scopes
	scoped := false
	counted := false
	for {
		s.mu.Lock()
		earlier := s.unansweredEarlier(rules, func() router.Scopes {
			if !scoped {
				scopes, scoped = s.srv.protocol.RequestScopes(body, h), true
			}
			return scopes
		})
		s.bar.waiting = earlier >= 0
		closed := s.closed
		s.mu.Unlock()
		if earlier < 0 || closed {
			return !closed
		}
		if !counted {
			counted = true
			s.srv.instr.barrier(earlier, h.Key)
			if s.srv.log.Core().Enabled(zap.DebugLevel) {
				s.log.Debug("ordering barrier", zap.String("earlier", s.srv.protocol.Name(earlier)),
					zap.String("later", s.srv.protocol.Name(h.Key)), zap.Int32("correlation_id", h.CorrelationID))
			}
		}
		select {
		case <-s.bar.answered:
		case <-s.closedCh:
			return false
		}
	}
}

func (s *session) owesAny(rules []router.BarrierRule) bool {
	for _, r := range rules {
		if s.bar.owed[r.Slot].Load() > 0 {
			return true
		}
	}
	return false
}

// unansweredEarlier returns the key of the first request still owed that a
// rule makes the later request wait for, or -1; s.mu held. scopes reads the
// later request's scopes when a scoped rule needs them.
func (s *session) unansweredEarlier(rules []router.BarrierRule, scopes func() router.Scopes) int16 {
	for _, sl := range s.slots[s.head:] {
		if sl.done {
			continue
		}
		for _, r := range rules {
			if sl.key == r.Earlier && (r.Scope == router.ScopeNone || r.Scope.Matches(sl.scopes, scopes())) {
				return sl.key
			}
		}
	}
	return -1
}
