package listener_test

import (
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// upstreamConnections sums kproxy_upstream_connections over every broker
// and group.
func upstreamConnections(t *testing.T, env *proxytest.Env) float64 {
	return gaugeSum(t, env, "kproxy_upstream_connections")
}

// poolSize sums kproxy_upstream_pool_connections over every broker.
func poolSize(t *testing.T, env *proxytest.Env) float64 {
	return gaugeSum(t, env, "kproxy_upstream_pool_connections")
}

// gaugeSum sums every series of the gauge family name.
func gaugeSum(t *testing.T, env *proxytest.Env, name string) float64 {
	t.Helper()
	families, err := env.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// settle waits for the goroutine count to stop falling and returns it.
func settle() int {
	n := runtime.NumGoroutine()
	for range 100 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

// TestThousandConnectionsLeaveNothingBehind opens and closes 1,000 client
// connections — answered, abandoned mid-request and refused — and checks
// that goroutines, client connections and upstream connections return to
// where they were. Not parallel: it counts the process's goroutines.
func TestThousandConnectionsLeaveNothingBehind(t *testing.T) {
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")},
		// Pooled upstream connections keep kfake's goroutines for them
		// (in this process) until the pool's idle timeout closes them.
		Config: func(c *config.Config) { c.Upstream.Pool.IdleTimeout = 300 * time.Millisecond }})
	_, leader := leaderAddrs(t, env, "t")
	c := dialRaw(t, leader, "raw-client")
	metadataWorks(t, c)
	c.Close()
	waitFor(t, "warm-up connection gone", func() bool {
		return testutil.ToFloat64(env.Metrics.ClientConnections) == 0 && upstreamConnections(t, env) == 0
	})
	baseline := settle()

	const conns, parallel = 1000, 25
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for w := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < conns; i += parallel {
				if err := churnOne(i, env.Bootstrap(), leader); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, "every session and lane closed", func() bool {
		return testutil.ToFloat64(env.Metrics.ClientConnections) == 0 && upstreamConnections(t, env) == 0
	})
	if got := testutil.ToFloat64(env.Metrics.ClientConnectionsTotal); got < conns {
		t.Fatalf("%v connections accepted, want at least %d", got, conns)
	}
	// Half the sessions left nothing in flight: their lanes were reused by
	// later sessions, whose answers rawclient matched to their requests.
	hits := testutil.ToFloat64(env.Metrics.PoolHits)
	if hits == 0 {
		t.Error("no lane took a pooled connection")
	}
	t.Logf("upstream pool: %v hits, %v misses, %v lanes closed busy", hits, testutil.ToFloat64(env.Metrics.PoolMisses),
		testutil.ToFloat64(env.Metrics.PoolDiscards.WithLabelValues("busy")))
	waitFor(t, "every pooled upstream connection closed by the pool's idle timeout", func() bool {
		return poolSize(t, env) == 0
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := settle()
		if n <= baseline+2 {
			t.Logf("goroutines: %d before, %d after %d connections", baseline, n, conns)
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after %d connections:\n%s", baseline, n, conns, buf[:runtime.Stack(buf, true)])
		}
	}
}

// churnOne is one short-lived client: most ask for metadata and hang up,
// every fourth hangs up with a long-poll fetch still in flight, every
// tenth hangs up without a word.
func churnOne(i int, bootstrap, leader string) error {
	switch {
	case i%10 == 0:
		conn, err := net.Dial("tcp", bootstrap)
		if err != nil {
			return err
		}
		return conn.Close()
	case i%4 == 0:
		c, err := rawclient.Dial(leader)
		if err != nil {
			return err
		}
		_, err = c.Send(rawclient.FetchRequest("t", 0, 5*time.Second))
		c.Close()
		return err
	}
	c, err := rawclient.Dial(bootstrap)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.Conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Send(kmsg.NewPtrMetadataRequest()); err != nil {
		return err
	}
	_, err = c.Read()
	return err
}
