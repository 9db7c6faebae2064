package listener_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// Helpers shared by the listener's tests: clients, waiting for a
// condition, what a refused or closed connection looks like, proxies in
// particular states.

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, bootstrap string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(bootstrap)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consumeExactly polls until n distinct records arrived, failing on
// duplicates.
func consumeExactly(t *testing.T, ctx context.Context, cl *kgo.Client, n int) map[string]bool {
	t.Helper()
	seen := make(map[string]bool, n)
	for len(seen) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d before timeout", len(seen), n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Errorf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if seen[string(r.Value)] {
				t.Errorf("duplicate record %s", r.Value)
			}
			seen[string(r.Value)] = true
		})
	}
	return seen
}

// dialRaw opens a raw single-socket client with a bounded lifetime.
func dialRaw(t *testing.T, addr, clientID string) *rawclient.Conn {
	t.Helper()
	c, err := rawclient.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	c.ClientID = clientID
	t.Cleanup(func() { c.Close() })
	_ = c.Conn.SetDeadline(time.Now().Add(time.Minute))
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expectClosed waits for the proxy to close conn.
func expectClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	for {
		_, err := conn.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("proxy did not close the connection")
		}
		return
	}
}

// roundTripWorks proves another client is untouched.
func roundTripWorks(t *testing.T, cl *kgo.Client, value string) {
	t.Helper()
	ctx := ctxTimeout(t, 20*time.Second)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte(value)}).FirstErr(); err != nil {
		t.Fatalf("healthy client broken after %s: %v", value, err)
	}
}

// leaderAddrs returns the address of the partition leader of topic/0,
// directly at kfake and through the proxy.
func leaderAddrs(t *testing.T, env *proxytest.Env, topic string) (direct, proxied string) {
	t.Helper()
	leader := env.Cluster.LeaderFor(topic, 0)
	addrs := env.Proxy.BrokerAddrs()
	proxied, ok := addrs[leader]
	if !ok {
		t.Fatalf("proxy has no listener for broker %d: %v", leader, addrs)
	}
	for i, a := range env.Cluster.ListenAddrs() {
		if int32(i) == leader {
			direct = a
		}
	}
	return direct, proxied
}

func metadataWorks(t *testing.T, c *rawclient.Conn) {
	t.Helper()
	if _, err := c.Send(kmsg.NewPtrMetadataRequest()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(); err != nil {
		t.Fatalf("metadata through the proxy: %v", err)
	}
}

// notReadyProxy starts a proxy whose only seed refuses connections and
// returns its bootstrap address.
func notReadyProxy(t *testing.T) string { return notReadyProxyMetrics(t, metrics.NewNop()) }

func notReadyProxyMetrics(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	srv, err := listener.New(loopback.Config([]string{dead}), zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)), m)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	if srv.Ready() {
		t.Fatal("ready with every seed unreachable")
	}
	return srv.BootstrapAddr()
}

// observed is a logger that both prints (zaptest) and records every entry.
func observed(t *testing.T, level zapcore.Level) (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(level)
	tee := zapcore.NewTee(core, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Core())
	return zap.New(tee), logs
}

// expectReset sends ApiVersions and expects the connection reset: a client
// reads a clean close before its first answer as a TLS or SASL problem
// (kgo fails the waiting records without retrying), but retries a reset.
func expectReset(t *testing.T, addr string) {
	t.Helper()
	if err := refusedRoundTrip(t, addr); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after the proxy gave up: %v, want a connection reset", err)
	}
}

// refusedRoundTrip sends ApiVersions on a new connection and returns why
// no answer came, nil if one did. A connection the proxy resets at once may
// fail in the dial itself.
func refusedRoundTrip(t *testing.T, addr string) error {
	t.Helper()
	c, err := rawclient.Dial(addr)
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) {
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

// secureEnv is kfake with SCRAM-SHA-512 behind kproxy, which terminates
// client SASL for user "app" (password from a file) and "tools" (from the
// environment), optionally with TLS on its listeners.
func secureEnv(t *testing.T, listenTLS config.ListenTLS) *proxytest.Env {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "app.pw")
	if err := os.WriteFile(pw, []byte("app-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KPROXY_TEST_TOOLS_PW", "tools-secret")
	return proxytest.Start(t, proxytest.Options{
		Kfake: []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(config.SASLScram512, "proxy", "upstream-secret"), kfake.SeedTopics(3, "t")},
		Config: func(c *config.Config) {
			c.Upstream.SASL = config.UpstreamSASL{Mechanism: config.SASLScram512, Username: "proxy", Password: "upstream-secret"}
			c.Listen.TLS = listenTLS
			c.Listen.SASL = config.ListenSASL{
				Mode:       config.SASLModeTerminate,
				Mechanisms: []string{config.SASLPlain, config.SASLScram256, config.SASLScram512},
				Users:      map[string]string{"app": "file:" + pw, "tools": "env:KPROXY_TEST_TOOLS_PW"},
			}
		},
	})
}
