package listener_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/proxytest"
)

// BenchmarkShortLivedClients: sequential kgo clients that each connect,
// produce one record and close, against a 1-broker SCRAM-SHA-512 kfake
// cluster, over three paths alternated client by client so that drift on
// a shared machine lands on all three: direct (the client authenticates
// itself), kproxy with the upstream pool off, and kproxy with the pool on
// (the defaults). It reports each path's p50 and the ratios to direct; it
// passes or fails on nothing but errors.
//
//	go test -run '^$' -bench ShortLivedClients -benchtime 1x -v ./internal/listener
func BenchmarkShortLivedClients(b *testing.B) {
	const clients = 100
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"),
		kfake.EnableSASL(), kfake.Superuser(config.SASLScram512, "proxy", "proxy-secret"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cluster.Close)
	start := func(poolMax int) *proxytest.Env {
		cfg := loopback.Config(cluster.ListenAddrs())
		cfg.Upstream.SASL = config.UpstreamSASL{Mechanism: config.SASLScram512, Username: "proxy", Password: "proxy-secret"}
		cfg.Upstream.Pool.MaxIdlePerBroker = poolMax
		if err := cfg.Validate(); err != nil {
			b.Fatal(err)
		}
		return proxytest.StartProxy(b, cfg, zaptest.NewLogger(b, zaptest.Level(zap.WarnLevel)))
	}
	type path struct {
		name string
		run  func(ctx context.Context, i int) error
		took []time.Duration
	}
	direct := cluster.ListenAddrs()[0]
	noPoolEnv, pooledEnv := start(0), start(config.Defaults().Upstream.Pool.MaxIdlePerBroker)
	noPool, pooled := noPoolEnv.Bootstrap(), pooledEnv.Bootstrap()
	auth := kgo.SASL(scram.Auth{User: "proxy", Pass: "proxy-secret"}.AsSha512Mechanism())
	paths := []*path{
		{name: "direct (client SCRAM-SHA-512)", run: func(ctx context.Context, i int) error {
			return shortLivedProducer(ctx, direct, fmt.Sprint(i), auth)
		}},
		{name: "kproxy, upstream pool off", run: func(ctx context.Context, i int) error {
			return shortLivedProducer(ctx, noPool, fmt.Sprint(i))
		}},
		{name: "kproxy, upstream pool on", run: func(ctx context.Context, i int) error {
			return shortLivedProducer(ctx, pooled, fmt.Sprint(i))
		}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for range b.N {
		for _, p := range paths {
			p.took = p.took[:0]
		}
		for i := range clients {
			for _, p := range paths {
				began := time.Now()
				if err := p.run(ctx, i); err != nil {
					b.Fatalf("%s, client %d: %v", p.name, i, err)
				}
				p.took = append(p.took, time.Since(began))
			}
		}
	}
	p50 := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2]
	}
	base := p50(paths[0].took)
	b.Logf("%d sequential kgo clients per path (connect, produce one record, close), alternated client by client:", clients)
	for _, p := range paths {
		q := slices.Clone(p.took)
		slices.Sort(q)
		b.Logf("  %-30s p50 %6.1f ms  p90 %6.1f ms  p50 ÷ direct %.2f",
			p.name, ms(q[len(q)/2]), ms(q[len(q)*9/10]), float64(q[len(q)/2])/float64(base))
	}
	b.Logf("  pool: %v hits, %v misses (lanes that dialed)",
		testutil.ToFloat64(pooledEnv.Metrics.PoolHits), testutil.ToFloat64(pooledEnv.Metrics.PoolMisses))
	b.ReportMetric(ms(base), "direct-p50-ms")
	b.ReportMetric(ms(p50(paths[1].took)), "nopool-p50-ms")
	b.ReportMetric(ms(p50(paths[2].took)), "pool-p50-ms")
	b.ReportMetric(float64(p50(paths[2].took))/float64(base), "pool/direct")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
