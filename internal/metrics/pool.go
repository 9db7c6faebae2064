package metrics

import "github.com/prometheus/client_golang/prometheus"

func (m *Metrics) newPool(f factory) {
	m.PoolIdle = f.gauge(prometheus.GaugeOpts{
		Name: "kproxy_upstream_pool_idle", Help: "Upstream connections dialed ahead (TLS and SASL done) waiting in the warm pool for a lane."})
	m.PoolHits = f.counter(prometheus.CounterOpts{
		Name: "kproxy_upstream_pool_hits_total", Help: "Lanes that took a ready connection from the warm pool instead of dialing."})
	m.PoolMisses = f.counter(prometheus.CounterOpts{
		Name: "kproxy_upstream_pool_misses_total", Help: "Lanes that found the warm pool empty for their broker and dialed (only counted while the pool is enabled)."})
}
