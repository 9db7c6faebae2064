package listener_test

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/proxytest"
)

// TestUnreachableBrokerResetsClient: kgo producing through kproxy to a
// broker that had just restarted failed 74 records in a 10-minute soak
// with "broker closed the connection immediately during api versions
// negotiation": the proxy closed the session cleanly when its dial failed.
// The broker stays in the cluster's metadata, as during a restart (a
// broker that leaves has its client port closed instead: cluster_test.go).
func TestUnreachableBrokerResetsClient(t *testing.T) {
	t.Parallel()
	var conns loopback.ConnTracker
	var listeners sync.Map // address → the broker's listener
	listen := func(network, address string) (net.Listener, error) {
		ln, err := conns.Listen(network, address)
		if err == nil {
			listeners.Store(ln.Addr().String(), ln)
		}
		return ln, err
	}
	env := proxytest.Start(t, proxytest.Options{Brokers: 2, Kfake: []kfake.Opt{kfake.ListenFn(listen)}})
	upstream := env.Cluster.ListenAddrs()[1]
	proxied := env.Proxy.BrokerAddrs()[1]
	ln, _ := listeners.Load(upstream)
	ln.(net.Listener).Close() // the broker process is down, not removed
	conns.Kill(upstream)
	expectReset(t, proxied) // the dial fails
	expectReset(t, proxied) // the dial backoff refuses
	waitFor(t, "dial failures counted", func() bool {
		return testutil.ToFloat64(env.Metrics.SessionCloses.WithLabelValues("dial_failed")) == 2
	})
	if got := testutil.ToFloat64(env.Metrics.LimitHits.WithLabelValues(metrics.LimitDialBackoff)); got != 1 {
		t.Fatalf("dial backoff refusals = %v, want 1", got)
	}
}

// TestNotReadyRefusesConnection: until upstream metadata is fetched the
// bootstrap port refuses connections, so a client reports "connection
// refused" and retries (elsewhere than Linux it is accepted and reset).
func TestNotReadyRefusesConnection(t *testing.T) {
	t.Parallel()
	addr := notReadyProxy(t)
	if runtime.GOOS != "linux" {
		expectReset(t, addr)
		return
	}
	for range 3 {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err == nil {
			conn.Close()
			t.Fatal("a not-ready proxy accepted a connection")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial: %v, want connection refused", err)
		}
	}
}
