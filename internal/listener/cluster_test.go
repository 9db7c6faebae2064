package listener_test

import (
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// TestPeriodicRefreshFollowsTheCluster: with no client at all, kproxy's own
// metadata fetch gives a joining broker its port and closes the port of a
// broker that left, which then refuses connections.
func TestPeriodicRefreshFollowsTheCluster(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Config: func(c *config.Config) {
		c.Upstream.MetadataMaxAge = 100 * time.Millisecond
	}})
	old := env.Proxy.BrokerAddrs()[2]
	if _, _, err := env.Cluster.AddNode(7, 0); err != nil {
		t.Fatal(err)
	}
	if err := env.Cluster.RemoveNode(2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "broker 7 to get a port and broker 2 to lose its own", func() bool {
		addrs := env.Proxy.BrokerAddrs()
		_, has7 := addrs[7]
		_, has2 := addrs[2]
		return has7 && !has2
	})
	if err := served(old); err == nil {
		t.Fatal("the port of the broker that left still serves")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		// Parallel tests bind ports the system picks; another may hold this one now.
		t.Logf("the port of the broker that left: %v (not refused: reused by another test?)", err)
	}
	if !env.Proxy.Ready() {
		t.Fatalf("not ready: %s", env.Proxy.NotReadyReason())
	}
}

// TestFailedDialRefreshes: the periodic fetch is out of reach, so only a
// failed dial can tell kproxy that broker 2 left and broker 7 joined.
func TestFailedDialRefreshes(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Config: func(c *config.Config) {
		c.Upstream.MetadataMaxAge = time.Hour
	}})
	old := env.Proxy.BrokerAddrs()[2]
	c := dialRaw(t, old, "raw-client") // accepted while broker 2 is still there
	if _, _, err := env.Cluster.AddNode(7, 0); err != nil {
		t.Fatal(err)
	}
	if err := env.Cluster.RemoveNode(2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(kmsg.NewPtrMetadataRequest()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(); err == nil {
		t.Fatal("answered through a broker that left")
	}
	waitFor(t, "broker 7 to get a port and broker 2 to lose its own", func() bool {
		addrs := env.Proxy.BrokerAddrs()
		_, has7 := addrs[7]
		_, has2 := addrs[2]
		return has7 && !has2
	})
}

// TestAuthFailureOfALeftBrokerClearsReadiness: a broker that refused
// kproxy's SASL credentials makes /readyz 503 while it is in the cluster,
// and no longer once it has left.
func TestAuthFailureOfALeftBrokerClearsReadiness(t *testing.T) {
	t.Parallel()
	const mech = config.SASLScram256
	env := proxytest.Start(t, proxytest.Options{
		Kfake: []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(mech, "proxy", "secret")},
		Config: func(c *config.Config) {
			c.Upstream.SASL = config.UpstreamSASL{Mechanism: mech, Username: "proxy", Password: "secret"}
			c.Upstream.MetadataMaxAge = 100 * time.Millisecond
		},
	})
	var refuse2 atomic.Bool
	env.Cluster.ControlKey(int16(kmsg.SASLAuthenticate), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		env.Cluster.KeepControl()
		if !refuse2.Load() || env.Cluster.CurrentNode() != 2 {
			return nil, nil, false
		}
		resp := kreq.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		return resp, nil, true
	})
	refuse2.Store(true)
	c := dialRaw(t, env.Proxy.BrokerAddrs()[2], "raw-client")
	if _, err := c.Send(kmsg.NewPtrMetadataRequest()); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Read() // the lane's dial fails authentication
	waitFor(t, "broker 2's refusal to make kproxy not ready", func() bool { return !env.Proxy.Ready() })
	if err := env.Cluster.RemoveNode(2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "readiness once broker 2 has left", env.Proxy.Ready)
}

// TestReadinessFollowsReachability: once no broker answers kproxy's own
// metadata fetch, /readyz says the cluster is unreachable.
func TestReadinessFollowsReachability(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Config: func(c *config.Config) {
		c.Upstream.MetadataMaxAge = 100 * time.Millisecond
	}})
	env.Cluster.Close()
	waitFor(t, "not ready with the cluster gone", func() bool { return !env.Proxy.Ready() })
	if reason := env.Proxy.NotReadyReason(); !strings.Contains(reason, "upstream cluster unreachable") {
		t.Fatalf("reason %q", reason)
	}
}

// TestReloadFixesUpstreamCredentials: kproxy starts with a wrong upstream
// password and is not ready; a reload with the right one makes it ready
// and serving, without a restart.
func TestReloadFixesUpstreamCredentials(t *testing.T) {
	t.Parallel()
	const mech = config.SASLScram256
	env := proxytest.Start(t, proxytest.Options{
		Kfake: []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(mech, "proxy", "right"), kfake.SeedTopics(1, "creds")},
		Config: func(c *config.Config) {
			c.Upstream.SASL = config.UpstreamSASL{Mechanism: mech, Username: "proxy", Password: "wrong"}
		},
		NotReady: true,
	})
	waitFor(t, "the wrong password to be refused", func() bool {
		return strings.Contains(env.Proxy.NotReadyReason(), "authentication")
	})
	cfg := env.Config
	cfg.Upstream.SASL.Password = "right"
	if err := env.Proxy.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "readiness after the reload", env.Proxy.Ready)
	produceConsume(t, env.Bootstrap(), "creds", 5)
}

// TestReloadRoutingGroupsReachNewSessions: moving Metadata into the admin
// group by reload leaves an open session routing it by the groups of its
// accept, and routes it by the new ones in a session opened afterwards.
func TestReloadRoutingGroupsReachNewSessions(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{})
	metadata := func(c *rawclient.Conn) {
		t.Helper()
		if _, err := c.Send(kmsg.NewPtrMetadataRequest()); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(); err != nil {
			t.Fatal(err)
		}
	}
	count := func(group string) float64 {
		return testutil.ToFloat64(env.Metrics.Requests.WithLabelValues(group, "Metadata"))
	}
	before := dialRaw(t, env.Bootstrap(), "raw-client")
	metadata(before)

	cfg := env.Config
	cfg.Routing.Groups = maps.Clone(cfg.Routing.Groups)
	cfg.Routing.Groups["admin"] = append(slices.Clone(cfg.Routing.Groups["admin"]), "Metadata")
	if err := env.Proxy.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	metadata(before)
	if got := count("default"); got != 2 {
		t.Fatalf("the open session sent %v Metadata on its default lane, want 2", got)
	}
	metadata(dialRaw(t, env.Bootstrap(), "raw-client"))
	if got := count("admin"); got != 1 {
		t.Fatalf("the new session sent %v Metadata on its admin lane, want 1", got)
	}
}

// served sends ApiVersions on a new connection to addr: nil when answered,
// else why not (the dial's error when refused).
func served(addr string) error {
	c, err := rawclient.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.Conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Send(kmsg.NewPtrApiVersionsRequest()); err != nil {
		return err
	}
	_, err = c.Read()
	return err
}

// TestReloadedIdleTimeoutReachesNewSessions: limits.client_idle_timeout
// changed by a reload closes a silent session opened after it, while one
// opened before keeps the timeout of its accept.
func TestReloadedIdleTimeoutReachesNewSessions(t *testing.T) {
	env := proxytest.Start(t, proxytest.Options{Brokers: 1})
	before := dialRaw(t, env.Bootstrap(), "before")
	cfg := env.Config
	cfg.Limits.ClientIdleTimeout = 300 * time.Millisecond
	if err := env.Proxy.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	after := dialRaw(t, env.Bootstrap(), "after")
	_ = after.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := after.Conn.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a silent session opened after the reload: read %v, want it closed", err)
	}
	waitFor(t, "the idle close to be counted", func() bool {
		return testutil.ToFloat64(env.Metrics.SessionCloses.WithLabelValues("client_idle_timeout")) == 1
	})
	if _, err := before.Send(kmsg.NewPtrApiVersionsRequest()); err != nil {
		t.Fatalf("the session opened before the reload was closed: %v", err)
	}
	if _, err := before.Read(); err != nil {
		t.Fatalf("the session opened before the reload was closed: %v", err)
	}
}
