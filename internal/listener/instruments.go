package listener

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/router"
)

// Session close reasons (kproxy_session_closes_total{reason}).
const (
	reasonClientClosed       = "client_closed"
	reasonBadFrame           = "bad_frame"
	reasonUnsupportedVersion = "unsupported_version"
	reasonDialFailed         = "dial_failed"
	reasonUpstreamFailed     = "upstream_failed"
	reasonRewriteFailed      = "rewrite_failed"
	reasonClientWriteFailed  = "client_write_failed"
	reasonShutdown           = "shutdown"
	reasonClosed             = "closed"
)

// Frame error reasons (kproxy_frame_errors_total{reason}).
const (
	frameTLS                = "tls_on_plaintext"
	frameHTTP               = "http_on_kafka_port"
	frameNegative           = "negative_size"
	frameOversized          = "oversized"
	frameTruncated          = "truncated"
	frameUnsupportedVersion = "unsupported_version"
)

// instruments resolves metric children once, so the per-request path does
// no label hashing. Per-API children are made on first use, keeping the
// scrape free of series for APIs nobody calls.
type instruments struct {
	m          *metrics.Metrics
	protocol   *router.Protocol
	classifier *router.Classifier
	byKey      [129]atomic.Pointer[apiInstruments]      // last entry: unknown keys
	throttled  [129]atomic.Pointer[throttleInstruments] // by key (throttle)
	inflight   []prometheus.Gauge                       // by group
	clientIn   prometheus.Counter
	clientOut  prometheus.Counter

	hold           []prometheus.Observer // by group
	holWaitAvoided []prometheus.Counter  // by group
	fetchCapped    prometheus.Counter
	orderings      [2]prometheus.Counter // strict, relaxed
}

type apiInstruments struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func newInstruments(m *metrics.Metrics, p *router.Protocol, c *router.Classifier) *instruments {
	in := &instruments{
		m:           m,
		protocol:    p,
		classifier:  c,
		clientIn:    m.Bytes.WithLabelValues(metrics.ClientIn),
		clientOut:   m.Bytes.WithLabelValues(metrics.ClientOut),
		fetchCapped: m.FetchWaitCapped,
		orderings: [2]prometheus.Counter{
			m.SessionOrdering.WithLabelValues(orderingName(false)),
			m.SessionOrdering.WithLabelValues(orderingName(true)),
		},
	}
	for g := range c.Len() {
		name := c.Name(router.Group(g))
		in.inflight = append(in.inflight, m.InflightRequests.WithLabelValues(name))
		in.hold = append(in.hold, m.ResponseHold.WithLabelValues(name))
		in.holWaitAvoided = append(in.holWaitAvoided, m.HolWaitAvoided.WithLabelValues(name))
	}
	return in
}

func (in *instruments) api(key int16) *apiInstruments {
	idx := int(key)
	if !in.protocol.Known(key) {
		idx = len(in.byKey) - 1
	}
	if a := in.byKey[idx].Load(); a != nil {
		return a
	}
	group, name := in.classifier.Name(in.classifier.Classify(key)), in.protocol.Name(key)
	a := &apiInstruments{
		requests: in.m.Requests.WithLabelValues(group, name),
		duration: in.m.RequestDuration.WithLabelValues(group, name),
	}
	in.byKey[idx].Store(a)
	return a
}

// throttleInstruments are made on an API's first throttled answer, so that
// the scrape carries throttle series only for APIs a broker throttled.
type throttleInstruments struct {
	answers, seconds prometheus.Counter
}

// throttle counts a broker answer's quota throttle time, read where the
// answer opens with it (router.ResponseThrottle).
func (in *instruments) throttle(key, version int16, afterCorrelation []byte) {
	ms, ok := in.protocol.ResponseThrottle(key, version, afterCorrelation)
	if !ok || ms <= 0 {
		return
	}
	t := in.throttled[key].Load() // known: ResponseThrottle reads only known keys
	if t == nil {
		name := in.protocol.Name(key)
		t = &throttleInstruments{answers: in.m.ThrottledResponses.WithLabelValues(name), seconds: in.m.ThrottleSeconds.WithLabelValues(name)}
		in.throttled[key].Store(t)
	}
	t.answers.Inc()
	t.seconds.Add(float64(ms) / 1000)
}

func (in *instruments) request(key int16, _ router.Group) { in.api(key).requests.Inc() }

// answered observes an upstream answer's latency. The in-flight gauge is
// lowered by the session when it records the answer (or closes without it),
// so that an answer racing the session's close is not counted twice.
func (in *instruments) answered(key int16, _ router.Group, took time.Duration) {
	in.api(key).duration.Observe(took.Seconds())
}

// rewrite counts a rewritten answer. Its series is made here, not with the
// API's other children, so that the scrape carries no always-zero series for
// APIs that are never rewritten; a rewrite allocates anyway.
func (in *instruments) rewrite(key int16) {
	in.m.Rewrites.WithLabelValues(in.protocol.Name(key)).Inc()
}

func (in *instruments) sessionOrdering(relaxed bool) {
	if relaxed {
		in.orderings[1].Inc()
	} else {
		in.orderings[0].Inc()
	}
}

// barrier counts a request held for an earlier one's answer; rare, so its
// series is made on use.
func (in *instruments) barrier(earlier, later int16) {
	in.m.OrderingBarriers.WithLabelValues(in.protocol.Name(earlier), in.protocol.Name(later)).Inc()
}

func (in *instruments) frameError(reason string) { in.m.FrameErrors.WithLabelValues(reason).Inc() }

// bridged counts a request the version bridge translated; the versions are
// bounded (only removed ones are bridged), the label values made once per
// pair would save little on a path that decodes the request anyway.
func (in *instruments) bridged(key, from, to int16) {
	in.m.BridgedRequests.WithLabelValues(in.protocol.Name(key), strconv.Itoa(int(from)), strconv.Itoa(int(to))).Inc()
}

func (in *instruments) sessionClosed(reason string) {
	in.m.SessionCloses.WithLabelValues(reason).Inc()
}

func (in *instruments) dialError(broker string) {
	in.m.UpstreamDialErrors.WithLabelValues(broker).Inc()
}
