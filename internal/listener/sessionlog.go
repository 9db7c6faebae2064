package listener

import (
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
)

// sessionStats is what a session's close line reports about it.
type sessionStats struct {
	bytesIn, bytesOut, requests atomic.Int64

	// guarded by session.mu: set when the ordering is decided
	clientID, software string
	user               string // listen.sasl.mode terminate: once authenticated
}

// sessionFailureLogs rate-limits the warning for sessions closed by a
// failure, one burst per close reason: a client that keeps failing the same
// way is one line per burst (with how many it left out), while a failure of
// another kind is still logged at once.
type sessionFailureLogs struct {
	byReason sync.Map // reason → *burstLog
}

func (f *sessionFailureLogs) allow(reason string, now time.Time) (ok bool, missed int) {
	b, found := f.byReason.Load(reason)
	if !found {
		b, _ = f.byReason.LoadOrStore(reason, &burstLog{})
	}
	return b.(*burstLog).allow(now)
}

// logClosed writes the session's one line at info: who the client was, how
// it was served and why it ended. A session ended by a failure is a warning
// instead, with the error, at most one per burst.
func (s *session) logClosed(reason string, err error, unanswered int, clientID, software, user string) {
	ordering := config.OrderingStrict
	if s.ord.relaxed.Load() {
		ordering = config.OrderingRelaxed
	}
	fields := []zap.Field{
		zap.String("reason", reason),
		zap.String("client_id", clientID),
		zap.String("client_software_name", software),
		zap.String("ordering", ordering),
		zap.Float64("duration_s", time.Since(s.start).Seconds()),
		zap.Int64("requests", s.stats.requests.Load()),
		zap.Int64("bytes_in", s.stats.bytesIn.Load()),
		zap.Int64("bytes_out", s.stats.bytesOut.Load()),
	}
	if user != "" {
		fields = append(fields, zap.String("user", user))
	}
	if unanswered > 0 {
		fields = append(fields, zap.Int("unanswered", unanswered))
	}
	if err == nil || reason == reasonClientClosed {
		s.log.Info("session closed", fields...)
		return
	}
	if ok, left := s.srv.lim.failed.allow(reason, time.Now()); ok {
		s.log.Warn("session closed", append(fields, zap.Error(err), zap.Int("failures_not_logged", left))...)
	}
}
