package listener_test

import (
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/proxytest"
)

// sample sums the kproxy series of name whose labels include every one of
// want: counter and gauge values, histogram sample counts.
func sample(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k, v := range want {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// TestMetricsFollowTraffic drives a producer and a group consumer through
// the proxy and checks that every metric of the contract moves the way its
// help text says, returns to zero when the clients leave, and carries only
// bounded label values.
func TestMetricsFollowTraffic(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Kfake: []kfake.Opt{kfake.SeedTopics(3, "m")}})
	reg := env.Registry
	get := func(name string, labels ...string) float64 {
		want := map[string]string{}
		for i := 0; i+1 < len(labels); i += 2 {
			want[labels[i]] = labels[i+1]
		}
		return sample(t, reg, name, want)
	}
	ctx := ctxTimeout(t, 60*time.Second)

	producer, err := kgo.NewClient(kgo.SeedBrokers(env.Bootstrap()), kgo.DefaultProduceTopic("m"), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(env.Bootstrap()), kgo.ConsumeTopics("m"), kgo.ConsumerGroup("mg"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		producer.Close()
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			producer.Close()
			consumer.Close()
		}
	})
	const n = 50
	for i := range n {
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consumeExactly(t, ctx, consumer, n)
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}

	// While the clients are connected.
	open := get("kproxy_client_connections")
	if open < 2 || get("kproxy_client_connections_total") < open {
		t.Errorf("client connections: %v open, %v accepted", open, get("kproxy_client_connections_total"))
	}
	for _, g := range []string{"produce", "fetch", "group", "coordination", "default"} {
		if get("kproxy_upstream_connections", "group", g) < 1 {
			t.Errorf("kproxy_upstream_connections{group=%q}: no open lane", g)
		}
	}
	for _, ga := range [][2]string{
		{"produce", "Produce"}, {"fetch", "Fetch"}, {"group", "JoinGroup"}, {"group", "SyncGroup"},
		{"coordination", "OffsetCommit"}, {"coordination", "OffsetFetch"},
		{"default", "ApiVersions"}, {"default", "Metadata"}, {"default", "FindCoordinator"},
	} {
		if get("kproxy_requests_total", "group", ga[0], "api", ga[1]) < 1 {
			t.Errorf("kproxy_requests_total{group=%q,api=%q} = 0", ga[0], ga[1])
		}
	}
	if got := get("kproxy_requests_total", "group", "produce", "api", "Produce"); got < 1 || got > n {
		t.Errorf("produce requests = %v for %d sync produces", got, n)
	}
	for _, api := range []string{"Metadata", "FindCoordinator"} {
		if get("kproxy_rewrites_total", "api", api) < 1 {
			t.Errorf("kproxy_rewrites_total{api=%q} = 0: broker addresses were not rewritten?", api)
		}
	}
	for _, dir := range []string{"client_in", "client_out", "upstream_in", "upstream_out"} {
		if get("kproxy_bytes_total", "direction", dir) <= 0 {
			t.Errorf("kproxy_bytes_total{direction=%q} = 0", dir)
		}
	}
	if in, out := get("kproxy_bytes_total", "direction", "client_in"), get("kproxy_bytes_total", "direction", "upstream_out"); out > in {
		t.Errorf("forwarded %v bytes upstream, more than the %v read from clients", out, in)
	}
	if got := testutil.ToFloat64(env.Metrics.BuildInfo.WithLabelValues("test", runtime.Version())); got != 1 {
		t.Errorf("kproxy_build_info = %v", got)
	}

	// The clients leave: gauges return to zero, every session is counted
	// closed, and every acks=all produce was answered.
	producer.Close()
	consumer.Close()
	closed = true
	waitFor(t, "gauges back to zero", func() bool {
		return get("kproxy_client_connections") == 0 && get("kproxy_upstream_connections") == 0 &&
			get("kproxy_inflight_requests") == 0 && get("kproxy_buffered_bytes") == 0 &&
			get("kproxy_session_closes_total") == get("kproxy_client_connections_total")
	})
	if get("kproxy_session_closes_total", "reason", "client_closed") < 2 {
		t.Errorf("session closes: %v client_closed", get("kproxy_session_closes_total", "reason", "client_closed"))
	}
	if d, r := get("kproxy_request_duration_seconds", "group", "produce", "api", "Produce"), get("kproxy_requests_total", "group", "produce", "api", "Produce"); d != r {
		t.Errorf("produce: %v durations observed for %v requests", d, r)
	}
	if got := get("kproxy_frame_errors_total") + get("kproxy_upstream_dial_errors_total"); got != 0 {
		t.Errorf("%v frame or dial errors on clean traffic", got)
	}
	checkBoundedLabels(t, reg, env.Cluster.ListenAddrs())
}

// checkBoundedLabels: no client address and no API version in any label;
// every value comes from a small known set. upstreams are the cluster's
// broker addresses (the upstream pool's label).
func checkBoundedLabels(t *testing.T, reg prometheus.Gatherer, upstreams []string) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	groups := config.DefaultGroups()
	apis := map[string]bool{"Unknown": true}
	for k := range int16(100) {
		if name := kmsg.NameForKey(k); name != "" {
			apis[name] = true
		}
	}
	allowed := map[string]func(string) bool{
		"group":  func(v string) bool { _, ok := groups[v]; return ok },
		"api":    func(v string) bool { return apis[v] },
		"broker": func(v string) bool { _, err := strconv.Atoi(v); return v == "bootstrap" || err == nil },
		"direction": func(v string) bool {
			return slices.Contains([]string{"client_in", "client_out", "upstream_in", "upstream_out"}, v)
		},
		"reason":   func(v string) bool { return v != "" && v == strings.ToLower(v) && !strings.ContainsAny(v, ":. ") },
		"ordering": func(v string) bool { return v == "strict" || v == "relaxed" },
		"limit": func(v string) bool {
			return slices.Contains([]string{"max_client_connections", "max_inflight_per_connection", "max_frame_bytes", "dial_backoff", "upstream_answer_grace", "max_buffered_bytes"}, v)
		},
		"upstream": func(v string) bool { return slices.Contains(upstreams, v) },
		"result":   func(v string) bool { return v == "success" || v == "failure" },
		"setting": func(v string) bool {
			return slices.Contains([]string{"listen.tls.cert_file", "listen.tls.client_ca_file", "upstream.tls.cert_file", "upstream.tls.ca_file"}, v)
		},
		"version":   func(v string) bool { return v == "test" },
		"goversion": func(v string) bool { return v == runtime.Version() },
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "kproxy_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				ok, known := allowed[l.GetName()]
				if !known || !ok(l.GetValue()) {
					t.Errorf("%s{%s=%q}: label or value outside the bounded set", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}
