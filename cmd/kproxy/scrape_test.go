package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/sidecar"
)

// requireTool finds a binary of Debian's prometheus package. CI (env CI
// set) must have it, since .ci/run installs it; elsewhere the test skips.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not installed, and CI requires it: .ci/run installs Debian's prometheus package", name)
	}
	t.Skipf("%s not installed: apt-get install prometheus to run this test (it fails instead of skipping when CI is set)", name)
	return ""
}

// startWithTraffic runs kproxy as `kproxy run` does (admin server, Go and
// process collectors, listeners) in front of a 3-broker kfake cluster,
// produces and consumes through it with kgo, and returns the admin address.
func startWithTraffic(t *testing.T) string {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(3, "obs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	cfg := loopback.Config(cluster.ListenAddrs())
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := sidecar.Start(context.Background(), cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), prometheus.NewRegistry(), version)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(5 * time.Second) })
	admin := "http://" + p.Admin.Addr()
	deadline := time.Now().Add(10 * time.Second)
	for httpGet(t, admin+"/readyz").code != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz never answered 200")
		}
		time.Sleep(20 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	producer, err := kgo.NewClient(kgo.SeedBrokers(p.Server.BootstrapAddr()), kgo.DefaultProduceTopic("obs"))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	const n = 20
	for i := range n {
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(p.Server.BootstrapAddr()), kgo.ConsumeTopics("obs"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	for got := 0; got < n; {
		fs := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", got, n, err)
		}
		got += fs.NumRecords()
	}
	return p.Admin.Addr()
}

type httpReply struct {
	code int
	body string
}

func httpGet(t *testing.T, url string) httpReply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return httpReply{code: 0, body: err.Error()}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return httpReply{resp.StatusCode, string(body)}
}

// TestScrapePassesPromtool: a real scrape after produce and consume
// traffic is clean under `promtool check metrics` (exposition format and
// Prometheus naming lint: units, _total counters, help texts).
func TestScrapePassesPromtool(t *testing.T) {
	promtool := requireTool(t, "promtool")
	admin := startWithTraffic(t)
	r := httpGet(t, "http://"+admin+"/metrics")
	if r.code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", r.code, r.body)
	}
	for _, want := range []string{
		`kproxy_requests_total{api="Produce",group="produce"} 20`,
		`kproxy_requests_total{api="Fetch",group="fetch"}`,
		`kproxy_request_duration_seconds_bucket{api="Produce",group="produce",le="+Inf"} 20`,
		`go_goroutines`, `process_resident_memory_bytes`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(r.body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	if t.Failed() || testing.Verbose() {
		for line := range strings.Lines(r.body) {
			if strings.HasPrefix(line, "kproxy_") && !strings.Contains(line, "_bucket{") {
				t.Log(strings.TrimSpace(line))
			}
		}
	}
}
