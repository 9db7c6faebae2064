package listener_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// rotatedCluster has two SCRAM users the broker tells apart: "old", a
// superuser, and "new", with no ACL at all, so that the cluster operations
// a DescribeCluster answer says are authorized name the principal the
// request ran as (principalOps).
func rotatedCluster() []kfake.Opt {
	return []kfake.Opt{
		kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser(config.SASLScram512, "old", "old-secret"),
		kfake.User(config.SASLScram512, "new", "new-secret"),
	}
}

func asUser(user string) config.UpstreamSASL {
	return config.UpstreamSASL{Mechanism: config.SASLScram512, Username: user, Password: user + "-secret"}
}

// principalOps asks, on c, which cluster operations the broker authorizes
// for the principal the request runs as: all of them for "old", none for
// "new".
func principalOps(t *testing.T, c *rawclient.Conn) int32 {
	t.Helper()
	req := kmsg.NewPtrDescribeClusterRequest()
	req.IncludeClusterAuthorizedOperations = true
	if _, err := c.Send(req); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Read()
	if err != nil {
		t.Fatalf("describe cluster through the proxy: %v", err)
	}
	return resp.Msg.(*kmsg.DescribeClusterResponse).ClusterAuthorizedOperations
}

// reloadAsNew reloads env with upstream.sasl changed from "old" to "new".
func reloadAsNew(t *testing.T, env *proxytest.Env) {
	t.Helper()
	cfg := env.Config
	cfg.Upstream.SASL = asUser("new")
	if err := env.Proxy.Reload(cfg); err != nil {
		t.Fatal(err)
	}
}

// TestReloadDrainsThePool: a short-lived client leaves its connection in
// the pool, authenticated as "old"; after a reload to "new" the next
// client's request runs as "new", on a connection dialed for it, and the
// old one is closed as reason="reload".
func TestReloadDrainsThePool(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: rotatedCluster(),
		Config: func(c *config.Config) { c.Upstream.SASL = asUser("old") }})

	first := dialRaw(t, env.Bootstrap(), "first")
	if ops := principalOps(t, first); ops == 0 {
		t.Fatal("the broker authorizes nothing for \"old\": the test cannot tell the users apart")
	}
	first.Close()
	waitFor(t, "the first client's lane in the pool", func() bool { return upstreamConnections(t, env) == 0 && poolSize(t, env) == 1 })

	reloadAsNew(t, env)
	next := dialRaw(t, env.Bootstrap(), "next")
	if ops := principalOps(t, next); ops != 0 {
		t.Fatalf("a session after the reload ran as the old user (authorized operations %#x, want none)", ops)
	}
	if n := testutil.ToFloat64(env.Metrics.PoolDiscards.WithLabelValues(metrics.PoolDiscardReload)); n != 1 {
		t.Fatalf("reload discards %v, want 1", n)
	}
}

// TestReloadRetiresLiveLanes: lanes open across the reload keep the old
// identity only while they carry something. A session that leaves after
// the reload gives nothing it dialed as "old" to the pool; one that stays
// sends its next request on a lane dialed as "new".
func TestReloadRetiresLiveLanes(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: rotatedCluster(),
		Config: func(c *config.Config) { c.Upstream.SASL = asUser("old") }})

	leaving, staying := dialRaw(t, env.Bootstrap(), "leaving"), dialRaw(t, env.Bootstrap(), "staying")
	for _, c := range []*rawclient.Conn{leaving, staying} {
		if ops := principalOps(t, c); ops == 0 {
			t.Fatal("the broker authorizes nothing for \"old\": the test cannot tell the users apart")
		}
	}
	reloadAsNew(t, env)
	leaving.Close()
	waitFor(t, "the leaving session's lane to go", func() bool { return upstreamConnections(t, env) == 1 })
	next := dialRaw(t, env.Bootstrap(), "next")
	if ops := principalOps(t, next); ops != 0 {
		t.Fatalf("a session after the reload took the connection a live lane dialed as the old user (authorized operations %#x, want none)", ops)
	}
	if ops := principalOps(t, staying); ops != 0 {
		t.Fatalf("a session open across the reload sent its next request as the old user (authorized operations %#x, want none)", ops)
	}
}
