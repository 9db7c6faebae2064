package listener

import (
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
)

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
func (s *session) logClosed(reason string, err error, unanswered int) {
	ordering := config.OrderingStrict
	if s.ord.relaxed.Load() {
		ordering = config.OrderingRelaxed
	}
	var clientID, software, user string
	if id := s.view.ident.Load(); id != nil {
		clientID, software = id.clientID, id.softwareName
	}
	if u := s.view.saslUser.Load(); u != nil {
		user = strings.TrimPrefix(*u, "sasl:")
	}
	fields := []zap.Field{
		zap.String("reason", reason),
		zap.String("client_id", clientID),
		zap.String("client_software_name", software),
		zap.String("ordering", ordering),
		zap.Float64("duration_s", time.Since(s.start).Seconds()),
		zap.Int64("requests", s.view.requests.Load()),
		zap.Int64("bytes_in", s.view.bytesIn.Load()),
		zap.Int64("bytes_out", s.view.bytesOut.Load()),
	}
	if user != "" {
		fields = append(fields, zap.String("user", user))
	}
	if bridged := s.view.bridged.describe(s.pol.protocol); bridged != "" {
		fields = append(fields, zap.String("bridged", bridged))
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
