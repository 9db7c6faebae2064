package main

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kproxy/kproxy/internal/proxytest"
)

// reportLine is one line of the workload's report, both paths side by side.
var reportLine = regexp.MustCompile(`(?m)^\s*\S+  direct  at broker \S+\s+answer \S+\s+\|  kproxy  at broker \S+\s+answer \S+$`)

// TestWorkloadReportsBothPaths runs the --workload client for two rounds:
// it prints a line per interval for both paths, and the broker sees the
// heartbeat behind the long poll only when the fetch is done directly, at
// once through kproxy.
func TestWorkloadReportsBothPaths(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Kfake: []kfake.Opt{kfake.SeedTopics(1, workloadTopic)}})
	const fetchWait = time.Second
	w, err := newWorkload(env.Cluster, env.Proxy, workloadOptions{
		FetchWait:   fetchWait,
		ReportEvery: 200 * time.Millisecond,
		Ordering:    env.Config.Routing.Ordering,
	})
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	w.Start(context.Background(), out)
	t.Cleanup(w.Stop)

	deadline := time.Now().Add(30 * time.Second)
	for {
		_, direct := w.paths[0].lastRound()
		_, proxied := w.paths[1].lastRound()
		if direct >= 2 && proxied >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rounds done within 30s: direct %d, kproxy %d\n%s", direct, proxied, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.Stop()
	t.Logf("\n%s", out.String())

	if n := len(reportLine.FindAllString(out.String(), -1)); n < 2 {
		t.Errorf("%d report lines with both paths, want at least 2:\n%s", n, out.String())
	}
	direct, _ := w.paths[0].lastRound()
	proxied, _ := w.paths[1].lastRound()
	if at := direct.hbAtBroker.Sub(direct.start); at < fetchWait/2 {
		t.Errorf("direct: heartbeat reached the broker after %v, while the %v fetch before it was parked", at, fetchWait)
	}
	if proxied.hbAtBroker.IsZero() || !proxied.hbAtBroker.Before(proxied.fetchAnswered) {
		t.Errorf("kproxy: heartbeat reached the broker at %v, not before the fetch was answered (%v): held behind it", proxied.hbAtBroker, proxied.fetchAnswered)
	}
}
