package hol

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/kproxy/kproxy/internal/proxytest"
)

// TestSaramaGroupDoesNotRebalance: a sarama consumer whose long poll
// (MaxWaitTime 9 s) outlasts its group session (6 s) shares one socket
// between the Fetch and its Heartbeats when its coordinator leads the
// partition it fetches (one broker here). Direct to the broker every
// Heartbeat waits behind a Fetch, the session expires and the group
// rebalances; through kproxy (default configuration: auto ordering, which is
// strict for sarama, and the fetch wait budget) it must not rebalance at
// all. Rebalances are counted on the broker's side: the member ids that
// DescribeGroups reports over the run.
func TestSaramaGroupDoesNotRebalance(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 45 s")
	}
	env := proxytest.Start(t, proxytest.Options{
		Brokers: 1,
		Kfake:   []kfake.Opt{kfake.SeedTopics(1, "idle")},
		Logger:  zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
	})
	const run = 45 * time.Second
	type result struct {
		name string
		r    GroupRun
		err  error
	}
	results := make(chan result, 2)
	for name, bootstrap := range map[string]string{"direct": env.Cluster.ListenAddrs()[0], "kproxy": env.Bootstrap()} {
		go func() {
			r, err := RunSaramaGroup(context.Background(), SaramaGroupOptions{
				Bootstrap: bootstrap,
				Broker:    env.Cluster.ListenAddrs()[0],
				Group:     "sarama-" + name,
				Topic:     "idle",
				Duration:  run,
			})
			results <- result{name, r, err}
		}()
	}
	got := map[string]GroupRun{}
	for range 2 {
		res := <-results
		if res.err != nil {
			t.Fatalf("%s: %v", res.name, res.err)
		}
		t.Logf("%s: %d rebalances (member ids seen: %d), %d heartbeats answered, heartbeat answer p50 %v p99 %v",
			res.name, res.r.Rebalances, res.r.MemberIDs, len(res.r.HeartbeatLatencies), Percentile(res.r.HeartbeatLatencies, 50), Percentile(res.r.HeartbeatLatencies, 99))
		got[res.name] = res.r
	}
	if got["direct"].Rebalances == 0 {
		t.Error("direct: the group never rebalanced, so this run shows nothing (the fetch and heartbeats did not share a socket?)")
	}
	if r := got["kproxy"]; r.Rebalances != 0 || r.MemberIDs != 1 {
		t.Errorf("kproxy: %d rebalances (%d member ids), want none", r.Rebalances, r.MemberIDs)
	}
}
