package listener_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/proxytest"
)

// TestWarmPoolServesShortLivedClients: behind a SCRAM-SHA-512 cluster, with
// upstream.pool.max_idle_per_broker set, short-lived clients one after the
// other find their lanes in the pool (hits), every record arrives, and the
// pool never holds more than its bound per broker. Shutdown closes it.
func TestWarmPoolServesShortLivedClients(t *testing.T) {
	const perBroker = 4
	env := proxytest.Start(t, proxytest.Options{
		Brokers: 1,
		Kfake:   []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(config.SASLScram512, "proxy", "pw"), kfake.SeedTopics(1, "short")},
		Config: func(c *config.Config) {
			c.Upstream.SASL = config.UpstreamSASL{Mechanism: config.SASLScram512, Username: "proxy", Password: "pw"}
			c.Upstream.Pool = config.UpstreamPool{MaxIdlePerBroker: perBroker, IdleTimeout: time.Minute}
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const clients = 10
	for i := range clients {
		cl, err := kgo.NewClient(kgo.SeedBrokers(env.Bootstrap()), kgo.DefaultProduceTopic("short"))
		if err != nil {
			t.Fatal(err)
		}
		err = cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%d", i)}).FirstErr()
		cl.Close()
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		if idle := testutil.ToFloat64(env.Metrics.PoolIdle); idle > perBroker {
			t.Fatalf("pool holds %v connections for one broker, bound %d", idle, perBroker)
		}
		// Let the replacements come in, as they would between a cron job's
		// runs, so that each client meets a full pool.
		waitFor(t, "the pool to refill", func() bool { return testutil.ToFloat64(env.Metrics.PoolIdle) == perBroker })
	}
	hits, misses := testutil.ToFloat64(env.Metrics.PoolHits), testutil.ToFloat64(env.Metrics.PoolMisses)
	t.Logf("%d clients: %v pool hits, %v misses", clients, hits, misses)
	if hits < clients {
		t.Errorf("%v pool hits for %d clients", hits, clients)
	}
	// Every record arrived.
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Bootstrap()), kgo.ConsumeTopics("short"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := 0
	for got < clients {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		got += fs.NumRecords()
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = env.Proxy.Shutdown(sctx)
	if idle := testutil.ToFloat64(env.Metrics.PoolIdle); idle != 0 {
		t.Fatalf("%v pooled connections left after shutdown", idle)
	}
}
