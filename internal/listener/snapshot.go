package listener

import (
	"cmp"
	"crypto/tls"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kproxy/kproxy/internal/router"
	"github.com/kproxy/kproxy/internal/sessioninfo"
	"github.com/kproxy/kproxy/internal/upstream"
)

// sessionView is what a session keeps for operators: who the client is
// and a few counters, written on the forward path with atomic adds only,
// read by snapshot (/debug/sessions) and feeding the per-client metrics.
type sessionView struct {
	ident    atomic.Pointer[identity]
	tlsPeer  atomic.Pointer[string] // "tls:" and the client certificate's subject
	saslUser atomic.Pointer[string] // "sasl:" and the user authenticated
	ordering atomic.Pointer[string] // reason the ordering was chosen; nil: not yet
	bytesIn  atomic.Int64
	bytesOut atomic.Int64
	requests atomic.Int64
	capped   atomic.Int64 // fetches whose wait the budget lowered
	bridged  bridgedVersions
}

// identity is who the client says it is; immutable once stored.
type identity struct {
	clientID                  string
	softwareName, softwareVer string
	metrics                   *clientInstruments // nil unless metrics.client_id_label
}

// identify records the client id of the session's first request, and the
// KIP-511 software name and version of its first ApiVersions v3+; it runs on
// the reader goroutine and costs one load once both are known.
func (v *sessionView) identify(q *router.Request, pol *requestPolicy) {
	cur := v.ident.Load()
	if cur != nil && (cur.softwareName != "" || q.Key != router.KeyApiVersions) {
		return
	}
	next := &identity{}
	if cur != nil {
		*next = *cur
	} else {
		next.clientID = clientIDLabel(string(q.ClientID))
		if pol.clients != nil {
			next.metrics = pol.clients.forID(string(q.ClientID))
		}
	}
	if name, version, ok := pol.protocol.ClientSoftware(q); ok {
		next.softwareName, next.softwareVer = clientIDLabel(string(name)), clientIDLabel(string(version))
	}
	v.ident.Store(next)
}

func (v *sessionView) clientMetrics() *clientInstruments {
	if id := v.ident.Load(); id != nil {
		return id.metrics
	}
	return nil
}

// countIn, countRequest, countAnswered and countOut feed the session's
// counters and, with metrics.client_id_label, its client's metrics.
func (v *sessionView) countIn(n int) {
	v.bytesIn.Add(int64(n))
	if cm := v.clientMetrics(); cm != nil {
		cm.in.Add(float64(n))
	}
}

func (v *sessionView) countRequest(g router.Group) {
	v.requests.Add(1)
	if cm := v.clientMetrics(); cm != nil {
		cm.requests[g].Inc()
	}
}

func (v *sessionView) countAnswered(g router.Group, took time.Duration) {
	if cm := v.clientMetrics(); cm != nil {
		cm.duration[g].Observe(took.Seconds())
	}
}

func (v *sessionView) countOut(n int) {
	v.bytesOut.Add(int64(n))
	if cm := v.clientMetrics(); cm != nil {
		cm.out.Add(float64(n))
	}
}

// tlsPrincipal notes the subject of a verified client certificate.
func (v *sessionView) tlsPrincipal(st tls.ConnectionState) {
	if len(st.PeerCertificates) > 0 {
		p := "tls:" + st.PeerCertificates[0].Subject.String()
		v.tlsPeer.Store(&p)
	}
}

func (v *sessionView) saslPrincipal(user string) {
	p := "sasl:" + clientIDLabel(user)
	v.saslUser.Store(&p)
}

// snapshot reads the session's state for /debug/sessions. It holds the
// answer queue's lock while it walks the answers owed (at most
// limits.max_inflight_per_connection), and each lane's lock briefly.
func (s *session) snapshot(now time.Time) sessioninfo.Session {
	out := sessioninfo.Session{
		Client:   s.conn.RemoteAddr().String(),
		Broker:   s.brokerLabel(),
		AgeMs:    now.Sub(s.start).Milliseconds(),
		BytesIn:  s.view.bytesIn.Load(),
		BytesOut: s.view.bytesOut.Load(),
		Requests: s.view.requests.Load(),
	}
	if id := s.view.ident.Load(); id != nil {
		out.ClientID, out.SoftwareName, out.SoftwareVersion = id.clientID, id.softwareName, id.softwareVer
	}
	var principals []string
	for _, p := range []*atomic.Pointer[string]{&s.view.saslUser, &s.view.tlsPeer} {
		if v := p.Load(); v != nil {
			principals = append(principals, *v)
		}
	}
	out.Principal = strings.Join(principals, " ")
	out.Bridged = s.view.bridged.describe(s.pol.protocol)
	if r := s.view.ordering.Load(); r != nil {
		out.Ordering, out.OrderingReason = orderingName(s.ord.relaxed.Load()), *r
	}
	out.FetchWait = s.fetchWaitState(now)

	var laneConns []*upstream.Lane[*slot]
	s.mu.Lock()
	laneConns = append(laneConns, s.lanes...) // one per group, then coordinators' (bridge.go)
	s.mu.Unlock()
	lanes := make([]sessioninfo.Lane, len(laneConns))
	s.answers.walkOwed(func(sl *slot) {
		if sl.done {
			out.Held.Answers++
			out.Held.LongestMs = max(out.Held.LongestMs, now.Sub(sl.doneAt).Milliseconds())
			return
		}
		out.InFlight++
		lane := sl.lane
		if int(lane) >= len(lanes) {
			lane = sl.group // on a coordinator's lane dialed since the copy
		}
		l := &lanes[lane]
		l.InFlight++
		if l.Oldest == nil {
			age, timeout := now.Sub(sl.sent).Milliseconds(), sl.wait.Milliseconds()
			l.Oldest = &sessioninfo.Request{API: s.pol.protocol.Name(sl.key), AgeMs: age, TimeoutMs: timeout,
				Overdue: age > timeout+sessioninfo.OverdueSlackMs}
		}
	})

	for g := range lanes {
		l := &lanes[g]
		named, coordinator := s.laneGroup(router.Group(g))
		l.Group = s.pol.classifier.Name(named)
		if coordinator {
			l.Group += " (group coordinator)"
		}
		switch conn := laneConns[g]; {
		case conn != nil:
			info := conn.Info()
			l.Upstream = info.Upstream
			switch {
			case info.Closed:
				l.State = sessioninfo.LaneClosed
			case info.Pending+info.Acks0 > 0 || l.InFlight > 0:
				l.State = sessioninfo.LaneBusy
			default:
				l.State = sessioninfo.LaneIdle
			}
		case l.InFlight > 0:
			l.State = sessioninfo.LaneClosed
		default:
			continue
		}
		out.Lanes = append(out.Lanes, *l)
	}
	return out
}

func (s *session) fetchWaitState(now time.Time) sessioninfo.FetchWait {
	pol := s.srv.ordering.Load()
	fw := sessioninfo.FetchWait{State: sessioninfo.FetchWaitOff, BudgetMs: int64(pol.budget), CappedFetches: s.view.capped.Load()}
	if pol.budget == 0 || s.ord.relaxed.Load() {
		return fw
	}
	fw.State = sessioninfo.FetchWaitArmed
	if held := s.ord.holdAt.Load(); held != 0 {
		if left := pol.window - now.Sub(time.Unix(0, held)); left > 0 {
			fw.State, fw.WindowLeftMs = sessioninfo.FetchWaitCapping, left.Milliseconds()
		}
	}
	return fw
}

// Sessions lists at most limit open sessions, those whose oldest request
// in flight is oldest first, then the longest open; total counts them all.
func (s *Server) Sessions(limit int) (list []sessioninfo.Session, total int) {
	s.mu.Lock()
	open := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		open = append(open, sess)
	}
	s.mu.Unlock()
	now := time.Now()
	list = make([]sessioninfo.Session, 0, len(open))
	for _, sess := range open {
		list = append(list, sess.snapshot(now))
	}
	slices.SortFunc(list, func(a, b sessioninfo.Session) int {
		return cmp.Or(cmp.Compare(oldestInFlight(b), oldestInFlight(a)), cmp.Compare(b.AgeMs, a.AgeMs), strings.Compare(a.Client, b.Client))
	})
	if limit >= 0 && len(list) > limit {
		list = list[:limit]
	}
	return list, len(open)
}

func oldestInFlight(s sessioninfo.Session) int64 {
	var oldest int64 = -1
	for _, l := range s.Lanes {
		if l.Oldest != nil {
			oldest = max(oldest, l.Oldest.AgeMs)
		}
	}
	return oldest
}
