package listener

import (
	"fmt"
	"regexp"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/router"
)

// Ordering: how a session writes answers back (docs/ARCHITECTURE.md,
// "Ordering modes"). One writer serves both modes: strict writes the done
// answers at the head of the queue, relaxed every done answer. A session
// only ever moves from strict to relaxed, which only relaxes a constraint,
// so the switch is safe at any point.

// Reasons a session got its ordering, for the log.
const (
	orderingByConfig     = "config"
	orderingByClientRule = "client_rule"
	orderingBySoftware   = "client_software"
	orderingByDefault    = "unknown_client" // auto with nothing that vouches for the client
)

// orderingPolicy is the server's ordering configuration, compiled once.
type orderingPolicy struct {
	mode   string
	rules  []clientRule
	budget int32 // fetch wait budget in ms; 0: off
	window time.Duration
}

type clientRule struct {
	re      *regexp.Regexp
	relaxed bool
}

func newOrderingPolicy(r config.Routing) (*orderingPolicy, error) {
	p := &orderingPolicy{mode: r.Ordering, budget: int32(r.FetchWaitBudget / time.Millisecond), window: r.HolWindow}
	for i, rule := range r.ClientRules {
		re, err := regexp.Compile(rule.ClientID)
		if err != nil {
			return nil, fmt.Errorf("routing.client_rules rule %d: %w", i+1, err)
		}
		p.rules = append(p.rules, clientRule{re: re, relaxed: rule.Ordering == config.OrderingRelaxed})
	}
	return p, nil
}

// sessionOrdering is a session's ordering state.
type sessionOrdering struct {
	relaxed atomic.Bool
	decided bool         // reader goroutine only
	holdAt  atomic.Int64 // unix nanos: last answer held behind an unfinished Fetch

	// guarded by answerQueue.mu
	fetchOwed int      // unanswered Fetch / ShareFetch slots
	acc       []uint64 // per group: [2g] requests sent, [2g+1] sum of their send times (ns since session start)
}

func isLongPoll(key int16) bool { return key == router.KeyFetch || key == router.KeyShareFetch }

// decideOrdering picks the session's ordering at its first request; in auto
// mode a client rule on the header's client.id wins, then the ApiVersions
// v3+ ClientSoftwareName, else strict. An ApiVersions newer than kmsg knows
// leaves the choice to the client's retry at a lower version.
func (s *session) decideOrdering(q *router.Request) {
	pol := s.srv.ordering.Load()
	clientID := q.ClientID
	var software []byte
	relaxed, reason := pol.mode == config.OrderingRelaxed, orderingByConfig
	if pol.mode == config.OrderingAuto {
		reason = ""
		for _, r := range pol.rules {
			if r.re.Match(clientID) {
				relaxed, reason = r.relaxed, orderingByClientRule
				break
			}
		}
		if reason == "" && q.Key == router.KeyApiVersions {
			name, ok, err := s.pol.protocol.ClientSoftwareName(q)
			if !ok && err == nil && q.Version > s.pol.protocol.MaxVersion(q.Key) {
				return
			}
			if ok {
				software, relaxed, reason = name, router.RelaxedClientSoftware(name), orderingBySoftware
			}
		}
		if reason == "" {
			reason = orderingByDefault
		}
	}
	s.ord.decided = true
	s.view.ordering.Store(&reason)
	s.pol.instr.sessionOrdering(relaxed)
	id, sw := string(clientID), string(software) // copies: the frame is reused
	s.log.Debug("session ordering", zap.String("ordering", orderingName(relaxed)), zap.String("reason", reason),
		zap.String("client_id", id), zap.String("client_software_name", sw))
	if relaxed {
		s.ord.relaxed.Store(true)
		s.answers.deliver() // anything done and queued may go now
	}
}

func orderingName(relaxed bool) string {
	if relaxed {
		return config.OrderingRelaxed
	}
	return config.OrderingStrict
}

// orderingPushed accounts for a forwarded request that owes an answer;
// q.mu held.
func (q *answerQueue) orderingPushed(sl *slot) {
	if isLongPoll(sl.key) {
		q.ord.fetchOwed++
	}
	q.bar.pushed(sl)
	acc := q.ord.acc
	sl.snap = append(sl.snap[:0], acc...)
	acc[2*int(sl.group)]++
	acc[2*int(sl.group)+1] += uint64(sl.sent.Sub(q.start))
}

// orderingAnswered runs when sl's answer arrives at now; q.mu held. It
// notes an answer held behind an unfinished Fetch (for the budget), and
// credits the head-of-line wait the split avoided: every request sent while
// sl was in flight, in another group, would have waited on a single socket
// until sl's answer, now - its send time (docs/CONFIGURATION.md,
// "Head-of-line wait avoided"). Per-group prefix sums of counts and send
// times make that O(groups) per answer; the uint64 arithmetic wraps, and
// the differences are exact.
func (q *answerQueue) orderingAnswered(sl *slot, now time.Time) {
	q.bar.answered(sl)
	if isLongPoll(sl.key) {
		q.ord.fetchOwed--
	} else if q.ord.fetchOwed > 0 && q.holdOpen() && !q.ord.relaxed.Load() {
		for i := q.head; i < len(q.slots) && q.slots[i] != sl; i++ {
			if e := q.slots[i]; !e.done && isLongPoll(e.key) {
				q.ord.holdAt.Store(now.UnixNano())
				break
			}
		}
	}
	if len(sl.snap) != len(q.ord.acc) {
		return
	}
	t := uint64(now.Sub(q.start))
	for g := 0; 2*g < len(q.ord.acc); g++ {
		if router.Group(g) == sl.group {
			continue // same lane: serialized with or without the proxy
		}
		n := q.ord.acc[2*g] - sl.snap[2*g]
		if n == 0 {
			continue
		}
		if waited := int64(n*t - (q.ord.acc[2*g+1] - sl.snap[2*g+1])); waited > 0 {
			q.instr.holWaitAvoided[g].Add(float64(waited) / float64(time.Second))
		}
	}
}
