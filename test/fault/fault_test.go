package fault_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// TestDropMidRequestPerGroup: kfake closes the connection carrying a
// request of each group while the request is in flight. The proxy must
// close the client's session (never answer for the broker) and the
// clients' retries must lose and duplicate nothing.
func TestDropMidRequestPerGroup(t *testing.T) {
	for _, tc := range []struct {
		group string
		key   kmsg.Key
		drops []int32 // which occurrences of the key to drop
	}{
		{"produce", kmsg.Produce, []int32{3, 12}},
		{"fetch", kmsg.Fetch, []int32{3, 12}},
		{"group", kmsg.JoinGroup, []int32{1, 3}},
		{"coordination", kmsg.OffsetCommit, []int32{2, 6}},
		{"admin", kmsg.CreateTopics, []int32{2, 4}},
		{"default", kmsg.Metadata, []int32{6, 12}},
	} {
		t.Run(tc.group, func(t *testing.T) {
			t.Parallel()
			s := newScenario(t, options{})
			var seen, dropped atomic.Int32
			s.env.Cluster.ControlKey(int16(tc.key), func(kmsg.Request) (kmsg.Response, error, bool) {
				s.env.Cluster.KeepControl()
				n := seen.Add(1)
				for _, d := range tc.drops {
					if n == d {
						dropped.Add(1)
						return nil, errors.New("injected connection drop"), true
					}
				}
				return nil, nil, false
			})
			s.start()
			// Admin and default traffic through the proxy while the
			// workload runs: its clients send few requests of either.
			adm := kadm.NewClient(s.client())
			s.every(100*time.Millisecond, func(i int) {
				switch tc.key {
				case kmsg.CreateTopics:
					_, _ = adm.CreateTopic(s.ctx, 1, 1, nil, "scratch-"+strconv.Itoa(i))
				case kmsg.Metadata:
					_, _ = adm.ListTopics(s.ctx, topic)
				}
			})
			s.verify()
			if dropped.Load() == 0 {
				t.Fatalf("no %s request was dropped (%d seen)", tc.key.Name(), seen.Load())
			}
			if got := testutil.ToFloat64(s.env.Metrics.SessionCloses.WithLabelValues("upstream_failed")); got < 1 {
				t.Fatalf("no session closed for the upstream failure (%d of %d %s requests dropped)", dropped.Load(), seen.Load(), tc.key.Name())
			}
			t.Logf("%s: %d of %d %s requests dropped mid-request", tc.group, dropped.Load(), seen.Load(), tc.key.Name())
		})
	}
}

// TestBrokerRemovedAndReadded: a broker leaves the cluster while clients
// run and comes back on the same address.
func TestBrokerRemovedAndReadded(t *testing.T) {
	t.Parallel()
	var conns loopback.ConnTracker
	s := newScenario(t, options{kfake: []kfake.Opt{kfake.ListenFn(conns.Listen)}})
	addr := s.env.Cluster.ListenAddrs()[2]
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	s.start()
	s.waitProduced(100)
	if err := s.env.Cluster.RemoveNode(2); err != nil {
		t.Fatal(err)
	}
	conns.Kill(addr)        // the broker process is gone, and its connections with it
	time.Sleep(time.Second) // the fault: the broker stays away this long
	if _, _, err := s.env.Cluster.AddNode(2, port); err != nil {
		t.Fatal(err)
	}
	s.verify()
}

// TestLeadersAndCoordinatorsMove: partitions move one by one, all leaders
// are re-elected, and group coordinators move, over and over.
func TestLeadersAndCoordinatorsMove(t *testing.T) {
	t.Parallel()
	s := newScenario(t, options{})
	s.start()
	s.every(300*time.Millisecond, func(i int) {
		switch i % 3 {
		case 0:
			_ = s.env.Cluster.MoveTopicPartition(topic, int32(i%partitions), int32(i%3))
		case 1:
			s.env.Cluster.ShufflePartitionLeaders()
		case 2:
			before := s.env.Cluster.CoordinatorFor(group)
			s.env.Cluster.RehashCoordinators()
			t.Logf("coordinator of %s: %d → %d", group, before, s.env.Cluster.CoordinatorFor(group))
		}
	})
	s.verify()
}

// TestSlowBroker: one broker answers everything late for a while, and one
// Metadata request on it far past the proxy's grace: that session is
// closed as stalled, the client retries, nothing is lost.
func TestSlowBroker(t *testing.T) {
	t.Parallel()
	const grace = time.Second
	s := newScenario(t, options{config: func(c *config.Config) { c.Limits.UpstreamAnswerGrace = grace }})
	var slow, stuckOnce atomic.Bool
	slow.Store(true)
	s.env.Cluster.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		s.env.Cluster.KeepControl()
		if !slow.Load() || s.env.Cluster.CurrentNode() != 1 {
			return nil, nil, false
		}
		d := 150 * time.Millisecond
		if req.Key() == int16(kmsg.Metadata) && stuckOnce.CompareAndSwap(false, true) {
			d = 3 * grace
		}
		s.env.Cluster.SleepControl(func() { time.Sleep(d) })
		return nil, nil, false
	})
	s.start()
	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(s.env.Metrics.SessionCloses.WithLabelValues("upstream_stalled")) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the stuck request did not close its session as stalled within 30s")
		}
		time.Sleep(20 * time.Millisecond) // polling the condition
	}
	slow.Store(false)
	s.verify()
	if got := testutil.ToFloat64(s.env.Metrics.SessionCloses.WithLabelValues("upstream_stalled")); got < 1 {
		t.Fatalf("the stuck request did not close its session as stalled")
	}
}

// TestEverySeedUnreachableAtStartup: the proxy comes up before the cluster,
// refuses clients promptly while not ready, and serves once a seed answers.
func TestEverySeedUnreachableAtStartup(t *testing.T) {
	t.Parallel()
	port := proxytest.FreePort(t)
	cfg := loopback.Config([]string{"127.0.0.1:" + strconv.Itoa(port)})
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "test")
	srv, err := listener.New(cfg, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)), m)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	env := &proxytest.Env{Proxy: srv, Config: cfg, Registry: reg, Metrics: m}
	if env.Proxy.Ready() {
		t.Fatal("ready with no cluster")
	}
	start := time.Now()
	// Refused: on Linux the dial itself ("connection refused"), elsewhere a
	// reset.
	if c, err := rawclient.Dial(env.Bootstrap()); err == nil {
		_ = c.Conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = c.Send(kmsg.NewPtrApiVersionsRequest())
		if _, err := c.Read(); err == nil {
			t.Fatal("answered with no cluster")
		}
		c.Close()
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("client held %v before being refused", took)
	}

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	deadline := time.Now().Add(30 * time.Second)
	for !env.Proxy.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("proxy not ready 30s after the cluster came up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	env.Cluster = cluster
	s := &scenario{t: t, env: env, seen: map[string]int{}, produceDone: make(chan struct{}), consumeDone: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	s.ctx = ctx
	s.start()
	s.verify()
}

// TestProxyRestartedWhileClientsRun: kproxy stops (gracefully) and a new
// one starts on the same ports while the workload runs.
func TestProxyRestartedWhileClientsRun(t *testing.T) {
	t.Parallel()
	ports := map[int32]int{0: proxytest.FreePort(t), 1: proxytest.FreePort(t), 2: proxytest.FreePort(t)}
	bootstrap := "127.0.0.1:" + strconv.Itoa(proxytest.FreePort(t))
	var cfg config.Config
	s := newScenario(t, options{config: func(c *config.Config) {
		c.Listen.Bootstrap = bootstrap
		c.Listen.BrokerPorts = ports
		cfg = *c
	}})
	s.start()
	for range 2 {
		s.waitProduced(100)
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		if err := s.env.Proxy.Shutdown(ctx); err != nil {
			t.Logf("shutdown: %v", err)
		}
		cancel()
		time.Sleep(200 * time.Millisecond) // the fault: no proxy for this long
		next := proxytest.StartProxy(t, cfg, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
		if !next.Proxy.Ready() {
			t.Fatal("restarted proxy not ready")
		}
		next.Cluster = s.env.Cluster
		s.env = next
	}
	s.verify()
}
