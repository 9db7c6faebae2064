package listener

import (
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/kproxy/kproxy/internal/router"
)

// Ordering barriers (docs/ARCHITECTURE.md, "Barriers"): a request whose
// outcome depends on an earlier request of another lane having been
// processed waits, before it is forwarded, until that request's answer is
// in. The reader waits, so nothing read after it overtakes it either; the
// wait lasts as long as the earlier request would have held it on a single
// connection, and no longer.

// sessionBarriers is a session's barrier state. The answer queue keeps it
// current as requests are pushed and answered.
type sessionBarriers struct {
	table *router.Barriers

	// owed counts unanswered requests per earlier key
	// (router.Barriers.EarlierSlot): the reader checks them without a
	// lock, and only the reader raises them, so a zero it reads is true.
	owed []atomic.Int32

	waiting bool          // the reader waits for an answer; guarded by answerQueue.mu
	wake    chan struct{} // wakes the waiting reader
}

func newSessionBarriers(b *router.Barriers) sessionBarriers {
	return sessionBarriers{table: b, owed: make([]atomic.Int32, b.EarlierKeys()), wake: make(chan struct{}, 1)}
}

// pushed counts an earlier request that now owes an answer; answerQueue.mu
// held.
func (b *sessionBarriers) pushed(sl *slot) {
	if i := b.table.EarlierSlot(sl.key); i >= 0 {
		b.owed[i].Add(1)
	}
}

// answered counts its answer in and wakes a waiting reader;
// answerQueue.mu held.
func (b *sessionBarriers) answered(sl *slot) {
	if i := b.table.EarlierSlot(sl.key); i >= 0 {
		b.owed[i].Add(-1)
		if b.waiting {
			select {
			case b.wake <- struct{}{}:
			default:
			}
		}
	}
}

func (b *sessionBarriers) owesAny(rules []router.BarrierRule) bool {
	for _, r := range rules {
		if b.owed[r.Slot].Load() > 0 {
			return true
		}
	}
	return false
}

// awaitBarriers holds the reader until no earlier request that q must
// follow is still unanswered. It reports false when the session closed
// meanwhile.
func (s *session) awaitBarriers(q *router.Request) bool {
	rules := s.pol.barriers.WaitsFor(q.Key)
	if !s.bar.owesAny(rules) {
		return true
	}
	var scopes router.Scopes
	scoped := false
	counted := false
	for {
		earlier, open := s.answers.unansweredEarlier(rules, func() router.Scopes {
			if !scoped {
				scopes, scoped = router.RequestScopes(q), true
			}
			return scopes
		})
		if earlier < 0 || !open {
			return open
		}
		if !counted {
			counted = true
			s.pol.instr.barrier(earlier, q.Key)
			if s.srv.log.Core().Enabled(zap.DebugLevel) {
				s.log.Debug("ordering barrier", zap.String("earlier", s.pol.protocol.Name(earlier)),
					zap.String("later", s.pol.protocol.Name(q.Key)), zap.Int32("correlation_id", q.CorrelationID))
			}
		}
		select {
		case <-s.bar.wake:
		case <-s.closedCh:
			return false
		}
	}
}

// unansweredEarlier returns the key of the first request still owed that a
// rule makes the later request wait for, or -1, and whether the queue is
// open; it marks the reader as waiting when there is one. scopes reads the
// later request's scopes when a scoped rule needs them.
func (q *answerQueue) unansweredEarlier(rules []router.BarrierRule, scopes func() router.Scopes) (earlier int16, open bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	earlier = -1
scan:
	for _, sl := range q.slots[q.head:] {
		if sl.done {
			continue
		}
		for _, r := range rules {
			if sl.key == r.Earlier && (r.Scope == router.ScopeNone || r.Scope.Matches(sl.scopes, scopes())) {
				earlier = sl.key
				break scan
			}
		}
	}
	q.bar.waiting = earlier >= 0
	return earlier, !q.closed
}
