package metrics

import "github.com/prometheus/client_golang/prometheus"

// Values of kproxy_limit_hits_total{limit}: the configuration key that was
// hit (dial_backoff: upstream.dial_backoff_max).
const (
	LimitMaxClientConnections = "max_client_connections"
	LimitMaxInflight          = "max_inflight_per_connection"
	LimitMaxFrameBytes        = "max_frame_bytes"
	LimitDialBackoff          = "dial_backoff"
	LimitUpstreamAnswerGrace  = "upstream_answer_grace"
	LimitMaxBufferedBytes     = "max_buffered_bytes"
)

// Values of kproxy_client_connections_refused_total{reason}.
const (
	RefusedMaxClientConnections = "max_client_connections"
	RefusedNotReady             = "not_ready"
)

func (m *Metrics) newLimits(f factory) {
	m.LimitHits = f.counterVec(prometheus.CounterOpts{
		Name: "kproxy_limit_hits_total", Help: "Times a configured limit was hit, by limit: max_client_connections, max_inflight_per_connection (a session stalled), max_frame_bytes, dial_backoff, upstream_answer_grace, max_buffered_bytes (a reader or an answer waited for memory)."},
		"limit")
	m.InflightBlockedSeconds = f.counter(prometheus.CounterOpts{
		Name: "kproxy_inflight_blocked_seconds_total", Help: "Time sessions spent not reading their client because limits.max_inflight_per_connection answers were owed."})
	m.BufferedBytes = f.gauge(prometheus.GaugeOpts{
		Name: "kproxy_buffered_bytes", Help: "Bytes kproxy holds for its clients (request frames, answers, rewrites), bounded by limits.max_buffered_bytes."})
	m.ClientConnectionsRefused = f.counterVec(prometheus.CounterOpts{
		Name: "kproxy_client_connections_refused_total", Help: "Client connections closed on accept, by reason: max_client_connections, not_ready (no upstream metadata yet)."},
		"reason")
}
