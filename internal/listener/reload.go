package listener

import (
	"fmt"
	"reflect"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/router"
)

// upstreamSecurity are the settings Dialer.Reconfigure applies.
type upstreamSecurity struct {
	tls  config.UpstreamTLS
	sasl config.UpstreamSASL
}

// LiveKeys are the settings Reload applies while kproxy runs, and when
// they reach a session:
//   - routing.groups: sessions opened after the reload (a session keeps
//     the groups of its accept, so a request never changes lane);
//   - routing.ordering, routing.client_rules: a session decides its
//     ordering at its first request, so sessions opened after the reload;
//   - routing.fetch_wait_budget, routing.hol_window: every session, from
//     its next request;
//   - limits.max_inflight_per_connection, limits.client_idle_timeout,
//     limits.client_write_timeout: sessions opened after the reload;
//   - limits.max_client_connections: the next connection accepted;
//   - limits.upstream_answer_grace: every session, from the next scan;
//   - upstream.tls.*, upstream.sasl.* (every key under them): upstream
//     connections dialed after the reload, and re-authentications of open
//     ones. A change closes every pooled connection, and each open lane's
//     connection once nothing is in flight on it (at the latest when its
//     session ends), so that no session runs as the replaced identity
//     (docs/ARCHITECTURE.md, "Upstream pool").
//
// Every other setting of the server needs a restart.
var LiveKeys = []string{
	"routing.groups", "routing.ordering", "routing.client_rules", "routing.fetch_wait_budget", "routing.hol_window",
	"limits.max_inflight_per_connection", "limits.max_client_connections", "limits.upstream_answer_grace",
	"limits.client_idle_timeout", "limits.client_write_timeout",
	"upstream.tls", "upstream.sasl",
}

// Reload applies the LiveKeys of cfg, a validated configuration; it
// changes nothing when it fails. Open sessions are never closed by it.
// Calls must not overlap.
func (s *Server) Reload(cfg config.Config) error {
	ordering, err := newOrderingPolicy(cfg.Routing)
	if err != nil {
		return err
	}
	cur := s.policy.Load()
	classifier, err := router.NewClassifier(cur.protocol, cfg.Routing.Groups)
	if err != nil {
		return fmt.Errorf("routing.groups: %w", err)
	}
	sec := upstreamSecurity{cfg.Upstream.TLS, cfg.Upstream.SASL}
	if !reflect.DeepEqual(sec, s.upstreamSec) {
		if err := s.dialer.Reconfigure(cfg.Upstream); err != nil {
			return err
		}
		s.upstreams.DropStale()
		s.upstreamSec = sec
	}
	limits := cfg.Limits
	s.ordering.Store(ordering)
	s.liveLimits.Store(&limits)
	next := *cur
	next.classifier, next.barriers = classifier, router.NewBarriers(classifier)
	next.instr = newInstruments(s.metrics, cur.protocol, classifier)
	next.clients = cur.clients.forClassifier(classifier)
	s.policy.Store(&next)
	select {
	case s.settingsChanged <- struct{}{}:
	default:
	}
	return nil
}
