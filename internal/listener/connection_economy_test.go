package listener_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kproxy/kproxy/internal/proxytest"
)

// lanesByLabel reads kproxy_upstream_connections per broker and group.
func lanesByLabel(t *testing.T, env *proxytest.Env) map[string]float64 {
	t.Helper()
	families, err := env.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "kproxy_upstream_connections" {
			continue
		}
		for _, m := range f.GetMetric() {
			if v := m.GetGauge().GetValue(); v > 0 {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
				out[strings.Join(labels, ",")] = v
			}
		}
	}
	return out
}

// TestSaramaGroupConnectionEconomy counts, with the default configuration,
// the upstream connections kproxy holds for a sarama consumer group that is
// consuming, against the client connections the group holds to kproxy.
// Each client connection gets one lane per group of APIs it uses, so the
// ratio is what the README's "Connection economy" reports, and it must stay
// at most 3. One broker is the worst case: every lane is on the one broker
// connection that is also the group's coordinator.
func TestSaramaGroupConnectionEconomy(t *testing.T) {
	for _, brokers := range []int{1, 3} {
		t.Run(fmt.Sprintf("brokers=%d", brokers), func(t *testing.T) { saramaGroupConnectionEconomy(t, brokers) })
	}
}

func saramaGroupConnectionEconomy(t *testing.T, brokers int) {
	env := proxytest.Start(t, proxytest.Options{Brokers: brokers, Kfake: []kfake.Opt{kfake.SeedTopics(6, "economy")}})

	cfg := saramaGroupConfig()
	const n = 300
	saramaProduce(t, env.Bootstrap(), cfg, "economy", n)
	waitFor(t, "the producer's connections to close", func() bool {
		return testutil.ToFloat64(env.Metrics.ClientConnections) == 0 && upstreamConnections(t, env) == 0
	})

	group, err := sarama.NewConsumerGroup([]string{env.Bootstrap()}, "economy-group", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer group.Close()
	h := &countingHandler{seen: map[string]int{}, want: n, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	consumed := consumeInBackground(ctx, group, "economy", h)
	select {
	case <-h.done:
	case <-ctx.Done():
		t.Fatal("the group did not consume every record")
	}
	// The group is in steady state: consuming (fetch), heartbeating and
	// committing; every lane it will use is open.
	clients := testutil.ToFloat64(env.Metrics.ClientConnections)
	upstreams := upstreamConnections(t, env)
	lanes := lanesByLabel(t, env)
	keys := make([]string, 0, len(lanes))
	for k := range lanes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("lane %s: %v", k, lanes[k])
	}
	t.Logf("sarama consumer group, %d brokers, 6 partitions: %v client connections, %v upstream connections (%.2f per client connection)",
		brokers, clients, upstreams, upstreams/clients)
	if clients == 0 {
		t.Fatal("no client connections counted")
	}
	if upstreams > 3*clients {
		t.Errorf("%v upstream connections for %v client connections: more than 3 per client connection", upstreams, clients)
	}
	cancel()
	if err := <-consumed; err != nil {
		t.Fatalf("consume: %v", err)
	}
}
