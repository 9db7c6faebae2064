// Package proxytest starts an in-process kfake cluster with kproxy in front
// of it, for tests and benchmarks.
package proxytest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/proxytest/kafka4"
)

// Env is a running cluster and the proxy in front of it.
type Env struct {
	Cluster  *kfake.Cluster
	Proxy    *listener.Server
	Config   config.Config
	Registry *prometheus.Registry
	Metrics  *metrics.Metrics
	// Floors counts what the cluster received, by key and version; set
	// when Options.Kafka4Floors asked for Kafka 4.0's floors.
	Floors *kafka4.Broker
}

// Options tune Start.
type Options struct {
	Brokers int         // default 3
	Kfake   []kfake.Opt // extra cluster options
	Config  func(*config.Config)
	Logger  *zap.Logger // default: zaptest at warn
	// Kafka4Floors makes the cluster close the connection on the request
	// versions Kafka 4.0 removed and list 4.0's minimums (package kafka4).
	Kafka4Floors bool
	// NotReady skips waiting for the proxy to be ready: for tests of a
	// proxy that cannot reach or authenticate to the cluster.
	NotReady bool
}

// Start brings up kfake and kproxy; both stop at test cleanup.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	if o.Brokers == 0 {
		o.Brokers = 3
	}
	cluster, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(o.Brokers)}, o.Kfake...)...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(cluster.Close)
	var floors *kafka4.Broker
	if o.Kafka4Floors {
		if floors, err = kafka4.Floors(cluster); err != nil {
			t.Fatalf("kafka 4 floors: %v", err)
		}
	}
	cfg := loopback.Config(cluster.ListenAddrs())
	if o.Config != nil {
		o.Config(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	log := o.Logger
	if log == nil {
		log = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	}
	env := startProxy(t, cfg, log, !o.NotReady)
	env.Cluster = cluster
	env.Floors = floors
	return env
}

// StartProxy runs kproxy with cfg until test cleanup and waits until it has
// fetched upstream metadata.
func StartProxy(t testing.TB, cfg config.Config, log *zap.Logger) *Env {
	t.Helper()
	return startProxy(t, cfg, log, true)
}

func startProxy(t testing.TB, cfg config.Config, log *zap.Logger, wait bool) *Env {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "test")
	srv, err := listener.New(cfg, log, m)
	if err != nil {
		t.Fatalf("listener: %v", err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	deadline := time.Now().Add(10 * time.Second)
	for wait && !srv.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("proxy not ready within 10s: %s", srv.NotReadyReason())
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, bounded above
	}
	return &Env{Proxy: srv, Config: cfg, Registry: reg, Metrics: m}
}

// Bootstrap is the proxy's bootstrap address.
func (e *Env) Bootstrap() string { return e.Proxy.BootstrapAddr() }

// FreePort returns a loopback port nothing listens on at the time of the
// call: for a seed that refuses connections, or a server that cannot report
// the port it bound for :0. Another process may take it meanwhile; callers
// that bind it must tolerate that.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
