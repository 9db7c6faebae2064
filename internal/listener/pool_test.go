package listener_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// countingListen counts the connections a kfake broker accepts.
func countingListen(n *atomic.Int64) kfake.Opt {
	return kfake.ListenFn(func(network, address string) (net.Listener, error) {
		ln, err := net.Listen(network, address)
		if err != nil {
			return nil, err
		}
		return &countingListener{Listener: ln, n: n}, nil
	})
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func scramCluster(accepted *atomic.Int64) []kfake.Opt {
	return []kfake.Opt{
		countingListen(accepted),
		kfake.EnableSASL(), kfake.Superuser(config.SASLScram512, "proxy", "proxy-secret"),
		kfake.SeedTopics(1, "t"),
	}
}

func scramUpstream(c *config.Config) {
	c.Upstream.SASL = config.UpstreamSASL{Mechanism: config.SASLScram512, Username: "proxy", Password: "proxy-secret"}
}

// shortLivedProducer is a CLI tool or a cron job: it connects, produces
// one record and leaves.
func shortLivedProducer(ctx context.Context, bootstrap, value string, opts ...kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(bootstrap), kgo.DefaultProduceTopic("t")}, opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	return cl.ProduceSync(ctx, &kgo.Record{Value: []byte(value)}).FirstErr()
}

// TestPoolServesTheNextClient: two kgo clients one after the other against
// a SCRAM-SHA-512 cluster; the second one's lanes take the first one's
// connections instead of dialing (and authenticating), and every answer
// still reaches the client that asked for it.
func TestPoolServesTheNextClient(t *testing.T) {
	t.Parallel()
	var accepted atomic.Int64
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: scramCluster(&accepted), Config: scramUpstream})
	ctx := ctxTimeout(t, 60*time.Second)

	if err := shortLivedProducer(ctx, env.Bootstrap(), "first"); err != nil {
		t.Fatalf("first client: %v", err)
	}
	waitFor(t, "the first client's lanes back in the pool", func() bool {
		return testutil.ToFloat64(env.Metrics.ClientConnections) == 0 && upstreamConnections(t, env) == 0
	})
	pooled := poolSize(t, env)
	if pooled == 0 {
		t.Fatal("no connection was pooled after the first client left")
	}
	dialsBefore := accepted.Load()
	hitsBefore := testutil.ToFloat64(env.Metrics.PoolHits)

	if err := shortLivedProducer(ctx, env.Bootstrap(), "second"); err != nil {
		t.Fatalf("second client: %v", err)
	}
	hits := testutil.ToFloat64(env.Metrics.PoolHits) - hitsBefore
	if hits == 0 {
		t.Fatal("the second client's lanes took nothing from the pool")
	}
	t.Logf("first client left %v connections in the pool; the second took %v and dialed %d", pooled, hits, accepted.Load()-dialsBefore)

	// Both records, each once, in order: the reused connections carried
	// the right requests and answers.
	consumer := newClient(t, env.Bootstrap(), kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	for len(got) < 2 {
		fs := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %v before timeout", got)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Errorf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if len(got) != 2 || got[0] != "first" || got[1] != "second" {
		t.Fatalf("consumed %q, want [first second]", got)
	}
	if n := testutil.ToFloat64(env.Metrics.SessionCloses.WithLabelValues("upstream_failed")); n != 0 {
		t.Fatalf("%v sessions failed upstream", n)
	}
}

// TestPoolNeverTakesARequestInFlight: a client that leaves with a long-poll
// Fetch unanswered leaves that lane's connection closed, not pooled; the
// next client's Fetch gets its own answer, not the abandoned one.
func TestPoolNeverTakesARequestInFlight(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")}})
	_, leader := leaderAddrs(t, env, "t")

	c := dialRaw(t, leader, "leaver")
	metadataWorks(t, c) // the default lane: answered, poolable
	if _, err := c.Send(rawclient.FetchRequest("t", 0, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fetch to be in flight", func() bool {
		return testutil.ToFloat64(env.Metrics.InflightRequests.WithLabelValues("fetch")) == 1
	})
	c.Close()
	waitFor(t, "the session to close", func() bool { return upstreamConnections(t, env) == 0 })
	if n := testutil.ToFloat64(env.Metrics.PoolDiscards.WithLabelValues(metrics.PoolDiscardBusy)); n != 1 {
		t.Fatalf("busy discards %v, want 1 (the fetch lane)", n)
	}
	if n := poolSize(t, env); n != 1 {
		t.Fatalf("%v pooled, want 1 (the default lane only)", n)
	}

	next := dialRaw(t, leader, "next")
	corrs, err := next.SendAll(kmsg.NewPtrMetadataRequest(), rawclient.FetchRequest("t", 0, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for range corrs {
		if _, err := next.Read(); err != nil {
			t.Fatalf("answer on a pooled connection: %v", err)
		}
	}
}

// TestPoolSASLSessionLifetime: short-lived clients for several SASL session
// lifetimes in a row, against a broker that enforces KIP-368
// (kip368Broker): pooled connections are handed out while their session has
// time left, re-authenticated on time by the lanes that take them, and
// closed instead once it is about to expire. The broker never reads a
// request on an expired session and no client sees a failure.
func TestPoolSASLSessionLifetime(t *testing.T) {
	t.Parallel()
	const lifetime = 2500 * time.Millisecond
	rules := &kip368Broker{lifetime: lifetime}
	env := proxytest.Start(t, proxytest.Options{
		Brokers: 1,
		Kfake: []kfake.Opt{
			kfake.ListenFn(rules.listen),
			kfake.EnableSASL(), kfake.Superuser(config.SASLPlain, "proxy", "pw"),
			kfake.BrokerConfigs(map[string]string{"connections.max.reauth.ms": fmt.Sprint(lifetime.Milliseconds())}),
			kfake.SeedTopics(1, "t"),
		},
		Config: func(c *config.Config) {
			c.Upstream.SASL = config.UpstreamSASL{Mechanism: config.SASLPlain, Username: "proxy", Password: "pw"}
		},
	})
	ctx := ctxTimeout(t, 60*time.Second)
	// A long-lived consumer keeps its lanes and re-authenticates them; the
	// short-lived producers churn through the pool meanwhile.
	consumer := newClient(t, env.Bootstrap(), kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	n := 0
	for start := time.Now(); time.Since(start) < 3*lifetime; n++ {
		if err := shortLivedProducer(ctx, env.Bootstrap(), fmt.Sprintf("r%d", n), kgo.ProducerLinger(0)); err != nil {
			t.Fatalf("client %d: %v", n, err)
		}
	}
	seen := consumeExactly(t, ctx, consumer, n)
	for i := range n {
		if !seen[fmt.Sprintf("r%d", i)] {
			t.Fatalf("record r%d missing", i)
		}
	}
	rules.mu.Lock()
	for _, b := range rules.breaches {
		t.Errorf("KIP-368 rule broken: %s", b)
	}
	reauths := rules.reauths
	rules.mu.Unlock()
	hits := testutil.ToFloat64(env.Metrics.PoolHits)
	expired := testutil.ToFloat64(env.Metrics.PoolDiscards.WithLabelValues(metrics.PoolDiscardAuthExpiry))
	if hits == 0 {
		t.Error("no pool hit")
	}
	if expired == 0 {
		t.Error("no pooled connection retired for its SASL session")
	}
	if n := testutil.ToFloat64(env.Metrics.SessionCloses.WithLabelValues("upstream_failed")); n != 0 {
		t.Errorf("%v sessions failed upstream", n)
	}
	t.Logf("%d short-lived clients over %v: %v pool hits, %v connections retired before their session expired, %d re-authentications",
		n, 3*lifetime, hits, expired, reauths)
}

// TestPoolOff: max_idle_per_broker 0 keeps nothing and counts nothing.
func TestPoolOff(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")},
		Config: func(c *config.Config) { c.Upstream.Pool.MaxIdlePerBroker = 0 }})
	for range 2 {
		c := dialRaw(t, env.Bootstrap(), "c")
		metadataWorks(t, c)
		c.Close()
		waitFor(t, "the session to close", func() bool { return upstreamConnections(t, env) == 0 })
	}
	if n := poolSize(t, env); n != 0 {
		t.Fatalf("%v pooled with the pool off", n)
	}
	if n := testutil.ToFloat64(env.Metrics.PoolHits) + testutil.ToFloat64(env.Metrics.PoolMisses); n != 0 {
		t.Fatalf("%v hits and misses counted with the pool off", n)
	}
}
