package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// metricValue scrapes one sample (name with its labels, as exposed) from
// kproxy's /metrics; 0 when absent.
func metricValue(t *testing.T, admin, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

func sessionCloses(t *testing.T, admin string) float64 {
	t.Helper()
	var sum float64
	for _, r := range []string{"client_closed", "shutdown", "dial_failed", "upstream_failed", "closed", "bad_frame", "upstream_stalled"} {
		sum += metricValue(t, admin, `kproxy_session_closes_total{reason="`+r+`"}`)
	}
	return sum
}

func waitMetric(t *testing.T, admin, sample string, want float64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); metricValue(t, admin, sample) != want; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", sample, metricValue(t, admin, sample), want)
		}
	}
}

// waitLogged waits until kproxy's log holds every one of lines: it reaches
// the test through a pipe, after the metric the test saw move.
func waitLogged(t *testing.T, p *kproxyProc, lines ...string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		logs := p.logs()
		missing := slices.DeleteFunc(slices.Clone(lines), func(l string) bool { return strings.Contains(logs, l) })
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("kproxy's log does not name %q", missing)
		}
	}
}

// TestReloadKeepsSessions: a consumer group and a producer run through
// kproxy across a good reload (SIGHUP) and a bad one. No session closes;
// the consumer keeps consuming; a session opened after the good reload
// gets the new client rule; the bad file is refused with every problem
// logged and the running configuration keeps serving; a restart-only key
// is reported and left.
func TestReloadKeepsSessions(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	path := filepath.Join(t.TempDir(), "kproxy.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("routing:\n  ordering: auto\n")
	p := startKproxyArgs(t, cluster.ListenAddrs()[0], []string{"run", "--config", path})
	if got := metricValue(t, p.admin, "kproxy_config_last_reload_success_timestamp_seconds"); got == 0 {
		t.Error("no start-up load time")
	}

	producer, err := kgo.NewClient(kgo.SeedBrokers(p.bootstrap), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	consumer, err := kgo.NewClient(kgo.SeedBrokers(p.bootstrap), kgo.ConsumerGroup("reload"), kgo.ConsumeTopics("t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var consumed atomic.Int64
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ctx.Err() == nil; i++ {
			producer.Produce(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}, nil)
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		for ctx.Err() == nil {
			consumed.Add(int64(consumer.PollFetches(ctx).NumRecords()))
		}
	}()
	t.Cleanup(func() { cancel(); <-done; <-done })
	waitConsumed := func(n int64) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); consumed.Load() < n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("consumed %d of %d", consumed.Load(), n)
			}
		}
	}
	waitConsumed(50)
	closes := sessionCloses(t, p.admin)
	newSession := func() *rawclient.Conn {
		t.Helper()
		c, err := rawclient.Dial(p.bootstrap)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.ClientID = "reload-new"
		_ = c.Conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Send(kmsg.NewPtrMetadataRequest()); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	const relaxed = `kproxy_session_ordering_total{ordering="relaxed"}`
	newSession()
	if got := metricValue(t, p.admin, relaxed); got != 0 {
		t.Fatalf("relaxed sessions before the reload: %v", got)
	}

	write("routing:\n  ordering: auto\n  client_rules: [{client_id: ^reload-new$, ordering: relaxed}]\nlimits:\n  max_frame_bytes: 2000000\nlog:\n  level: debug\n")
	p.signal(syscall.SIGHUP)
	waitMetric(t, p.admin, `kproxy_config_reloads_total{result="success"}`, 1)
	newSession()
	waitMetric(t, p.admin, relaxed, 1)
	waitLogged(t, p, "need a restart", "limits.max_frame_bytes") // the restart-only change
	waitConsumed(consumed.Load() + 50)

	write("routing:\n  ordering: sideways\nlimits:\n  max_client_connections: 0\n")
	p.signal(syscall.SIGHUP)
	waitMetric(t, p.admin, `kproxy_config_reloads_total{result="failure"}`, 1)
	waitLogged(t, p, "routing.ordering", "limits.max_client_connections") // the refused reload's problems
	newSession()
	waitMetric(t, p.admin, relaxed, 2) // the good reload's rule still serves
	waitConsumed(consumed.Load() + 50)
	if got := sessionCloses(t, p.admin); got != closes {
		t.Fatalf("%v sessions closed across the reloads", got-closes)
	}
	if got := metricValue(t, p.admin, `kproxy_config_reloads_total{result="success"}`); got != 1 {
		t.Fatalf("successful reloads %v, want 1", got)
	}
}

// TestCopyLiveMatchesLiveKeys keeps the keys a reload applies and the
// values it copies in step.
func TestCopyLiveMatchesLiveKeys(t *testing.T) {
	running := config.Defaults()
	next := config.Defaults()
	next.Routing.Groups = map[string][]string{"fetch": {"Fetch"}}
	next.Routing.Ordering = config.OrderingStrict
	next.Routing.ClientRules = []config.ClientRule{{ClientID: "x", Ordering: config.OrderingRelaxed}}
	next.Routing.FetchWaitBudget++
	next.Routing.HolWindow++
	next.Limits.MaxInflightPerConnection++
	next.Limits.MaxClientConnections++
	next.Limits.UpstreamAnswerGrace++
	next.Limits.ClientIdleTimeout++
	next.Limits.ClientWriteTimeout++
	next.Log.Level = "debug"
	next.ShutdownTimeout++
	next.ShutdownMode = config.ShutdownStopAccepting
	next.ShutdownQuietPeriod++
	next.Upstream.TLS.ServerName = "broker"
	next.Upstream.SASL.Username = "proxy"
	next.Limits.MaxFrameBytes++ // restart only
	next.Listen.BrokerPortBase++
	live := append(append([]string{}, listener.LiveKeys...), ownLiveKeys...)
	changed := config.Diff(running, next)
	for _, l := range live {
		if !slices.ContainsFunc(changed, func(k string) bool { return isLive([]string{l}, k) }) {
			t.Fatalf("the test changes nothing under live key %s (changed: %v)", l, changed)
		}
	}
	copyLive(&running, next)
	left := config.Diff(running, next)
	if fmt.Sprint(left) != "[listen.broker_port_base limits.max_frame_bytes]" {
		t.Fatalf("after copyLive these still differ: %v", left)
	}
}

// TestReloadOnFileChange: with config_watch_interval set, rewriting the
// file is enough (a mounted ConfigMap being updated); an unchanged file
// is not reloaded again.
func TestReloadOnFileChange(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	path := filepath.Join(t.TempDir(), "kproxy.yaml")
	if err := os.WriteFile(path, []byte("config_watch_interval: 50ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startKproxyArgs(t, cluster.ListenAddrs()[0], []string{"run", "--config", path})
	const success = `kproxy_config_reloads_total{result="success"}`
	if got := metricValue(t, p.admin, success); got != 0 {
		t.Fatalf("reloaded %v times before any change", got)
	}
	if err := os.WriteFile(path, []byte("config_watch_interval: 50ms\nlog:\n  level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, p.admin, success, 1)
	waitLogged(t, p, `"applied":["log.level"]`) // what the reload applied
	// Several more intervals: the same file is not reloaded again.
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got := metricValue(t, p.admin, success); got != 1 {
			t.Fatalf("reloaded %v times for one change", got)
		}
	}
}
