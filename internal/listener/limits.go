package listener

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/upstream"
)

// burstEvery is how often a limit that keeps being hit is logged: the first
// hit of a burst at once, then at most one line per interval carrying how
// many hits it left out.
const burstEvery = 10 * time.Second

// limits counts and logs the configured limits being hit. A limit hit in a
// burst (a thousand refused connections) is one log line, not a thousand.
type limits struct {
	log  *zap.Logger
	hits map[string]prometheus.Counter
	logs map[string]*burstLog
	// blocked is time sessions spent not reading their client because of
	// limits.max_inflight_per_connection.
	blocked prometheus.Counter
	refused map[string]prometheus.Counter
	// failed rate-limits the warning for sessions closed by a failure, per
	// close reason (sessionlog.go).
	failed sessionFailureLogs
}

func newLimits(log *zap.Logger, m *metrics.Metrics) *limits {
	l := &limits{
		log:     log,
		hits:    map[string]prometheus.Counter{},
		logs:    map[string]*burstLog{},
		blocked: m.InflightBlockedSeconds,
		refused: map[string]prometheus.Counter{},
	}
	for _, name := range []string{metrics.LimitMaxClientConnections, metrics.LimitMaxInflight, metrics.LimitMaxFrameBytes, metrics.LimitDialBackoff, metrics.LimitUpstreamAnswerGrace, metrics.LimitMaxBufferedBytes} {
		l.hits[name] = m.LimitHits.WithLabelValues(name)
		l.logs[name] = &burstLog{}
	}
	for _, reason := range []string{metrics.RefusedMaxClientConnections, metrics.RefusedNotReady} {
		l.refused[reason] = m.ClientConnectionsRefused.WithLabelValues(reason)
		l.logs["refused_"+reason] = &burstLog{}
	}
	return l
}

// hit counts one hit of limit and logs it unless its burst was logged.
func (l *limits) hit(limit string, fields ...zap.Field) {
	l.hits[limit].Inc()
	if ok, left := l.logs[limit].allow(time.Now()); ok {
		l.log.Warn("limit hit", append(fields, zap.String("limit", limit), zap.Int("hits_not_logged", left))...)
	}
}

// refuse closes a client connection on accept.
func (l *limits) refuse(conn net.Conn, reason string, fields ...zap.Field) {
	abort(conn) // reset.go: the client retries a reset
	_ = conn.Close()
	l.refused[reason].Inc()
	if reason == metrics.RefusedMaxClientConnections {
		l.hits[metrics.LimitMaxClientConnections].Inc()
	}
	if ok, left := l.logs["refused_"+reason].allow(time.Now()); ok {
		l.log.Warn("client connection refused", append(fields, zap.String("reason", reason), zap.Int("refusals_not_logged", left))...)
	}
}

// burstLog lets the first event through, then one per burstEvery.
type burstLog struct {
	mu     sync.Mutex
	next   time.Time
	missed int
}

func (b *burstLog) allow(now time.Time) (ok bool, missed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Before(b.next) {
		b.missed++
		return false, 0
	}
	missed, b.missed = b.missed, 0
	b.next = now.Add(burstEvery)
	return true, missed
}

// refusal says why a new client connection must be closed at once, if it
// must. Called with s.mu held.
func (s *Server) refusal() (string, []zap.Field) {
	if !s.ready.Load() {
		// Nothing to serve yet: a client that waited here would hang
		// until its own timeout; closed, it retries at once.
		return metrics.RefusedNotReady, []zap.Field{zap.String("why", s.NotReadyReason())}
	}
	if max := s.liveLimits.Load().MaxClientConnections; len(s.sessions) >= max {
		return metrics.RefusedMaxClientConnections, []zap.Field{zap.Int("max_client_connections", max)}
	}
	return "", nil
}

// acquireBlocking is acquire when the session already owes
// limits.max_inflight_per_connection answers: it counts the stall and the
// time the client goes unread.
func (s *session) acquireBlocking() bool {
	start := time.Now()
	s.srv.lim.hit(metrics.LimitMaxInflight, zap.Int("max_inflight_per_connection", cap(s.sem)))
	defer func() { s.srv.lim.blocked.Add(time.Since(start).Seconds()) }()
	select {
	case s.sem <- struct{}{}:
		return true
	case <-s.closedCh:
		return false
	}
}

// dialFailed counts a failed dial: a real one as a dial error, one refused
// by the backoff as a limit hit.
func (s *session) dialFailed(err error) {
	var be *upstream.BackoffError
	if errors.As(err, &be) {
		s.srv.lim.hit(metrics.LimitDialBackoff, zap.String("upstream", be.Addr), zap.Int("failures", be.Failures))
		return
	}
	s.pol.instr.dialError(s.brokerLabel())
}
