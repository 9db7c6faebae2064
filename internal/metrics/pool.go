package metrics

import "github.com/prometheus/client_golang/prometheus"

// Values of kproxy_upstream_pool_discards_total{reason}: why a ready
// upstream connection was closed instead of pooled or handed out.
const (
	PoolDiscardBusy        = "busy"         // its lane had something in flight, or a re-authentication under way
	PoolDiscardAcks0       = "acks0"        // its lane carried an acks=0 produce, which a server may still answer
	PoolDiscardUnclean     = "unclean"      // its lane's reader did not stop cleanly between two answers
	PoolDiscardFull        = "full"         // upstream.pool.max_idle_per_broker already held
	PoolDiscardIdleTimeout = "idle_timeout" // upstream.pool.idle_timeout passed
	PoolDiscardMaxAge      = "max_age"      // upstream.pool.max_age passed since it was dialed
	PoolDiscardAuthExpiry  = "auth_expiry"  // its SASL session was about to need re-authenticating
	PoolDiscardBroken      = "broken"       // the broker had closed it
	PoolDiscardUnsolicited = "unsolicited"  // the broker sent bytes nobody asked for
	PoolDiscardClosed      = "closed"       // the proxy was stopping
	PoolDiscardReload      = "reload"       // dialed with the upstream TLS or SASL settings a reload replaced
)

func (m *Metrics) newPool(f factory) {
	m.PoolConnections = f.gaugeVec(prometheus.GaugeOpts{
		Name: "kproxy_upstream_pool_connections", Help: "Idle upstream connections (dialed, TLS and SASL done) kept for the next session, per broker address."},
		"upstream")
	m.PoolHits = f.counter(prometheus.CounterOpts{
		Name: "kproxy_upstream_pool_hits_total", Help: "Lanes that took a pooled upstream connection instead of dialing."})
	m.PoolMisses = f.counter(prometheus.CounterOpts{
		Name: "kproxy_upstream_pool_misses_total", Help: "Lanes that found no pooled upstream connection and dialed (counted only while the pool is on)."})
	m.PoolDiscards = f.counterVec(prometheus.CounterOpts{
		Name: "kproxy_upstream_pool_discards_total", Help: "Upstream connections closed instead of pooled or handed out, by reason: busy, acks0, unclean, full, idle_timeout, max_age, auth_expiry, broken, unsolicited, closed, reload."},
		"reason")
}
