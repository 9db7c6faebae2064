package listener_test

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// expectReset sends ApiVersions and expects the connection reset: a client
// reads a clean close before its first answer as a TLS or SASL problem
// (kgo fails the waiting records without retrying), but retries a reset.
func expectReset(t *testing.T, addr string) {
	t.Helper()
	if err := refusedRoundTrip(t, addr); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after the proxy gave up: %v, want a connection reset", err)
	}
}

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

func TestNotReadyResetsClient(t *testing.T) {
	t.Parallel()
	env := notReadyProxy(t)
	start := time.Now()
	expectReset(t, env)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("refused after %v", took)
	}
}

// refusedRoundTrip sends ApiVersions on a new connection and returns why
// no answer came, nil if one did. A connection the proxy resets at once may
// fail in the dial itself.
func refusedRoundTrip(t *testing.T, addr string) error {
	t.Helper()
	c, err := rawclient.Dial(addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return err
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.Conn.SetDeadline(time.Now().Add(10 * time.Second))
	// The reset is reported once, to whichever call meets it first.
	if _, err := c.Send(kmsg.NewPtrApiVersionsRequest()); err != nil {
		return err
	}
	_, err = c.Read()
	return err
}
