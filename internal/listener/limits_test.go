package listener_test

import (
	"encoding/binary"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

func TestMaxClientConnectionsClosesNewOnes(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Config: func(c *config.Config) { c.Limits.MaxClientConnections = 2 }})
	a, b := dialRaw(t, env.Bootstrap(), "raw-client"), dialRaw(t, env.Bootstrap(), "raw-client")
	metadataWorks(t, a)
	metadataWorks(t, b)
	for range 3 {
		if refusedRoundTrip(t, env.Bootstrap()) == nil {
			t.Fatal("a connection over the limit was served")
		}
	}
	refused := env.Metrics.ClientConnectionsRefused.WithLabelValues(metrics.RefusedMaxClientConnections)
	hits := env.Metrics.LimitHits.WithLabelValues(metrics.LimitMaxClientConnections)
	waitFor(t, "refusals counted", func() bool { return testutil.ToFloat64(refused) == 3 && testutil.ToFloat64(hits) == 3 })
	metadataWorks(t, a) // the connections under the limit are untouched
	a.Close()
	waitFor(t, "a's session gone", func() bool { return testutil.ToFloat64(env.Metrics.ClientConnections) == 1 })
	metadataWorks(t, dialRaw(t, env.Bootstrap(), "raw-client"))
}

// TestEverySeedUnreachableRefusesPromptly: with no upstream metadata the
// proxy is not ready and refuses clients at once instead of letting them
// hang until their own timeouts: on Linux the bootstrap port is not yet
// listening; elsewhere the connection is accepted, reset and counted.
func TestEverySeedUnreachableRefusesPromptly(t *testing.T) {
	t.Parallel()
	m := metrics.NewNop()
	addr := notReadyProxyMetrics(t, m)
	for range 3 {
		start := time.Now()
		if refusedRoundTrip(t, addr) == nil {
			t.Fatal("answered while no broker is reachable")
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("client held %v before being refused", took)
		}
	}
	if runtime.GOOS == "linux" {
		return // refused by the kernel: nothing to count
	}
	// The client may see the reset before the refusal is counted.
	waitFor(t, "3 not-ready refusals counted", func() bool {
		return testutil.ToFloat64(m.ClientConnectionsRefused.WithLabelValues(metrics.RefusedNotReady)) == 3
	})
}

// TestInflightCapStallCounted: a client owed max_inflight answers is not
// read until one drains; the stall is counted and timed.
func TestInflightCapStallCounted(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")},
		Config: func(c *config.Config) { c.Limits.MaxInflightPerConnection = 1 }})
	_, addr := leaderAddrs(t, env, "t")
	c := dialRaw(t, addr, "raw-client")
	fetch, _ := c.Send(rawclient.FetchRequest("t", 0, 300*time.Millisecond)) // empty: held the full wait
	meta, _ := c.Send(kmsg.NewPtrMetadataRequest())
	for _, want := range []int32{fetch, meta} {
		resp, err := c.Read()
		if err != nil || resp.CorrelationID != want {
			t.Fatalf("answer %d: %v, want correlation id %d", resp.CorrelationID, err, want)
		}
	}
	if got := testutil.ToFloat64(env.Metrics.LimitHits.WithLabelValues(metrics.LimitMaxInflight)); got != 1 {
		t.Fatalf("in-flight stalls = %v, want 1", got)
	}
	if got := testutil.ToFloat64(env.Metrics.InflightBlockedSeconds); got < 0.1 {
		t.Fatalf("blocked %vs, want about the fetch's 0.3s wait", got)
	}
}

// TestSilentBrokerClosesSessionPastTimeoutPlusGrace: a broker that never
// answers a Metadata is given up on after the grace; a Fetch held for its
// own (longer than the grace) wait is not.
func TestSilentBrokerClosesSessionPastTimeoutPlusGrace(t *testing.T) {
	t.Parallel()
	const grace = 300 * time.Millisecond
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")},
		Config: func(c *config.Config) { c.Limits.UpstreamAnswerGrace = grace }})
	_, addr := leaderAddrs(t, env, "t")

	long := dialRaw(t, addr, "raw-client")
	corr, _ := long.Send(rawclient.FetchRequest("t", 0, 4*grace))
	if resp, err := long.Read(); err != nil || resp.CorrelationID != corr {
		t.Fatalf("fetch held for its own wait was not answered: %v", err)
	}

	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	env.Cluster.ControlKey(int16(kmsg.Metadata), func(kmsg.Request) (kmsg.Response, error, bool) {
		env.Cluster.SleepControl(func() { <-release })
		return nil, nil, false
	})
	silent := dialRaw(t, addr, "raw-client")
	start := time.Now()
	_, _ = silent.Send(kmsg.NewPtrMetadataRequest())
	if _, err := silent.Read(); err == nil {
		t.Fatal("an answer came from a silent broker")
	}
	if took := time.Since(start); took < grace {
		t.Fatalf("closed after %v, before the grace", took)
	}
	waitFor(t, "stall counted", func() bool {
		return testutil.ToFloat64(env.Metrics.SessionCloses.WithLabelValues("upstream_stalled")) == 1 &&
			testutil.ToFloat64(env.Metrics.LimitHits.WithLabelValues(metrics.LimitUpstreamAnswerGrace)) == 1
	})
}

func TestOversizedFrameCountedAsLimitHit(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Brokers: 1})
	for range 2 {
		conn, err := net.Dial("tcp", env.Bootstrap())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write(binary.BigEndian.AppendUint32(nil, uint32(env.Config.Limits.MaxFrameBytes+1)))
		expectClosed(t, conn)
		conn.Close()
	}
	waitFor(t, "limit hits counted", func() bool {
		return testutil.ToFloat64(env.Metrics.LimitHits.WithLabelValues(metrics.LimitMaxFrameBytes)) == 2
	})
}
