// Package metrics defines kproxy's Prometheus metrics. A Metrics value is
// built on a registry handed in by the caller; there is no global state.
package metrics

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Directions of kproxy_bytes_total.
const (
	ClientIn    = "client_in"
	ClientOut   = "client_out"
	UpstreamIn  = "upstream_in"
	UpstreamOut = "upstream_out"
)

// Metrics holds every collector kproxy exports. Names are a contract;
// labels are bounded (no client address, no API version).
type Metrics struct {
	ClientConnections      prometheus.Gauge
	ClientConnectionsTotal prometheus.Counter
	UpstreamConnections    *prometheus.GaugeVec   // broker, group
	UpstreamDialErrors     *prometheus.CounterVec // broker
	Requests               *prometheus.CounterVec // group, api
	RequestDuration        *prometheus.HistogramVec
	InflightRequests       *prometheus.GaugeVec   // group
	Bytes                  *prometheus.CounterVec // direction
	FrameErrors            *prometheus.CounterVec // reason
	BridgedRequests        *prometheus.CounterVec // api, from_version, to_version
	SessionCloses          *prometheus.CounterVec // reason
	Rewrites               *prometheus.CounterVec // api
	StreamedResponses      prometheus.Counter
	BuildInfo              *prometheus.GaugeVec
	ResponseHold           *prometheus.HistogramVec // group
	FetchWaitCapped        prometheus.Counter
	HolWaitAvoided         *prometheus.CounterVec // group
	SessionOrdering        *prometheus.CounterVec // ordering
	OrderingBarriers       *prometheus.CounterVec // from, to
	ThrottledResponses     *prometheus.CounterVec // api
	ThrottleSeconds        *prometheus.CounterVec // api

	// Per-client figures, filled only with metrics.client_id_label.
	ClientRequests        *prometheus.CounterVec   // client_id, group
	ClientRequestDuration *prometheus.HistogramVec // client_id, group
	ClientBytes           *prometheus.CounterVec   // client_id, direction
	ClientIDOverflow      prometheus.Counter

	// Limits (limits.go).
	LimitHits                *prometheus.CounterVec // limit
	InflightBlockedSeconds   prometheus.Counter
	BufferedBytes            prometheus.Gauge
	ClientConnectionsRefused *prometheus.CounterVec // reason

	// Reloads (reload.go).
	TLSReloadFailures       *prometheus.CounterVec // setting
	ConfigReloads           *prometheus.CounterVec // result
	ConfigLastReloadSuccess prometheus.Gauge

	// Upstream pool (pool.go).
	PoolConnections *prometheus.GaugeVec // upstream
	PoolHits        prometheus.Counter
	PoolMisses      prometheus.Counter
	PoolDiscards    *prometheus.CounterVec // reason
}

// New registers kproxy's metrics on reg, with the Go runtime (go_*) and
// process (process_*) collectors.
func New(reg prometheus.Registerer, version string) *Metrics {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := factory{reg}
	m := &Metrics{
		ClientConnections: f.gauge(prometheus.GaugeOpts{
			Name: "kproxy_client_connections", Help: "Client connections currently open."}),
		ClientConnectionsTotal: f.counter(prometheus.CounterOpts{
			Name: "kproxy_client_connections_total", Help: "Client connections accepted."}),
		UpstreamConnections: f.gaugeVec(prometheus.GaugeOpts{
			Name: "kproxy_upstream_connections", Help: "Upstream broker connections currently open, per broker and group."},
			"broker", "group"),
		UpstreamDialErrors: f.counterVec(prometheus.CounterOpts{
			Name: "kproxy_upstream_dial_errors_total", Help: "Failed connection attempts to a broker."},
			"broker"),
		Requests: f.counterVec(prometheus.CounterOpts{
			Name: "kproxy_requests_total", Help: "Requests forwarded upstream (or answered by the proxy), per group and Kafka API."},
			"group", "api"),
		RequestDuration: f.histogramVec(prometheus.HistogramOpts{
			Name:    "kproxy_request_duration_seconds",
			Help:    "Time from forwarding a request upstream to receiving its answer.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14)}, // 100µs … ~15min
			"group", "api"),
		InflightRequests: f.gaugeVec(prometheus.GaugeOpts{
			Name: "kproxy_inflight_requests", Help: "Requests forwarded and not yet answered, per group."},
			"group"),
		Bytes: f.counterVec(prometheus.CounterOpts{
			Name: "kproxy_bytes_total", Help: "Bytes moved, by direction: client_in, client_out, upstream_in, upstream_out."},
			"direction"),
		FrameErrors: f.counterVec(prometheus.CounterOpts{
			Name: "kproxy_frame_errors_total", Help: "Malformed or refused client frames, by reason."},
			"reason"),
		BridgedRequests: f.counterVec(prometheus.CounterOpts{
			Name: "kproxy_bridged_requests_total", Help: "Requests of a protocol version the brokers removed, translated up to one they accept (compat.version_bridge), by API and versions."},
			"api", "from_version", "to_version"),
		SessionCloses: f.counterVec(prometheus.CounterOpts{
			Name: "kproxy_session_closes_total", Help: "Client sessions closed, by reason."},
			"reason"),
		StreamedResponses: f.counter(prometheus.CounterOpts{
			Name: "kproxy_streamed_responses_total", Help: "Large answers written to the client while still arriving from the broker, instead of after their last byte."}),
		Rewrites: f.counterVec(prometheus.CounterOpts{
			Name: "kproxy_rewrites_total", Help: "Responses rewritten to carry proxy addresses or capped versions, per Kafka API."},
			"api"),
		BuildInfo: f.gaugeVec(prometheus.GaugeOpts{
			Name: "kproxy_build_info", Help: "Build information; always 1."},
			"version", "goversion"),
		ResponseHold: f.histogramVec(prometheus.HistogramOpts{
			Name:    "kproxy_response_hold_seconds",
			Help:    "Time a complete answer waited in the proxy before it was written to the client, per group of its request (strict ordering keeps it behind earlier answers).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14)},
			"group"),
		FetchWaitCapped: f.counter(prometheus.CounterOpts{
			Name: "kproxy_fetch_wait_capped_total", Help: "Fetch and ShareFetch requests whose MaxWaitMillis was lowered to routing.fetch_wait_budget."}),
		HolWaitAvoided: f.counterVec(prometheus.CounterOpts{
			Name: "kproxy_hol_wait_avoided_seconds_total", Help: "Estimated broker-side wait that requests of this group would have spent behind earlier requests of other groups on a single connection (see docs/METRICS.md)."},
			"group"),
		SessionOrdering: f.counterVec(prometheus.CounterOpts{
			Name: "kproxy_session_ordering_total", Help: "Client sessions by the answer ordering chosen for them: strict or relaxed."},
			"ordering"),
		OrderingBarriers: f.counterVec(prometheus.CounterOpts{
			Name: "kproxy_ordering_barriers_total", Help: "Requests held until an earlier request of another lane on the same client connection was answered, because their order changes the outcome (docs/ARCHITECTURE.md, Barriers); from is the earlier API, to the later."},
			"from", "to"),
	}
	m.ThrottledResponses = f.counterVec(prometheus.CounterOpts{
		Name: "kproxy_broker_throttled_responses_total", Help: "Broker answers carrying a quota throttle time above zero, per Kafka API (the APIs whose answers open with ThrottleMillis; not Produce or ApiVersions)."},
		"api")
	m.ThrottleSeconds = f.counterVec(prometheus.CounterOpts{
		Name: "kproxy_broker_throttle_seconds_total", Help: "Sum of the throttle times brokers returned, per Kafka API: quota pressure on the clients behind kproxy."},
		"api")
	m.ClientRequests = f.counterVec(prometheus.CounterOpts{
		Name: "kproxy_client_requests_total", Help: "Requests per client id and group (metrics.client_id_label)."},
		"client_id", "group")
	m.ClientRequestDuration = f.histogramVec(prometheus.HistogramOpts{
		Name:    "kproxy_client_request_duration_seconds",
		Help:    "Time from forwarding a request upstream to receiving its answer, per client id and group (metrics.client_id_label).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14)},
		"client_id", "group")
	m.ClientBytes = f.counterVec(prometheus.CounterOpts{
		Name: "kproxy_client_bytes_total", Help: "Bytes read from (client_in) and written to (client_out) clients, per client id (metrics.client_id_label)."},
		"client_id", "direction")
	m.ClientIDOverflow = f.counter(prometheus.CounterOpts{
		Name: "kproxy_client_id_overflow_total", Help: "Sessions counted under client_id=\"other\" because metrics.max_client_ids distinct client ids already had their own label."})
	m.newLimits(f)
	m.newReload(f)
	m.newPool(f)
	m.BuildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	return m
}

// NewNop returns metrics registered nowhere, for tests and tools that do not
// export them.
func NewNop() *Metrics { return New(prometheus.NewRegistry(), "test") }

type factory struct{ reg prometheus.Registerer }

func (f factory) gauge(o prometheus.GaugeOpts) prometheus.Gauge {
	g := prometheus.NewGauge(o)
	f.reg.MustRegister(g)
	return g
}

func (f factory) counter(o prometheus.CounterOpts) prometheus.Counter {
	c := prometheus.NewCounter(o)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gaugeVec(o prometheus.GaugeOpts, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(o, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) counterVec(o prometheus.CounterOpts, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(o, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogramVec(o prometheus.HistogramOpts, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(o, labels)
	f.reg.MustRegister(h)
	return h
}
