package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kproxy/kproxy/internal/proxytest"
)

// lockedBuffer collects a child process's output for the failure message.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startPrometheus runs the prometheus binary scraping target every second,
// with its storage in a temporary directory, until ctx ends or the test is
// cleaned up; it returns the server's base URL once /-/ready answers.
func startPrometheus(t *testing.T, ctx context.Context, bin, target string) string {
	t.Helper()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "prometheus.yml")
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: kproxy
    metrics_path: /metrics
    static_configs:
      - targets: [%q]
`, target)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var lastOut string
	for attempt := range 3 {
		// Prometheus cannot report the port it bound for :0: pick one; a lost
		// race shows as Prometheus exiting, and the loop tries again.
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(proxytest.FreePort(t)))
		out := &lockedBuffer{}
		cmd := exec.CommandContext(ctx, bin,
			"--config.file="+cfgFile,
			"--storage.tsdb.path="+filepath.Join(dir, fmt.Sprintf("data%d", attempt)),
			"--web.listen-address="+addr,
			"--web.console.templates="+dir, "--web.console.libraries="+dir,
			"--log.level=warn")
		cmd.Stdout, cmd.Stderr = out, out
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Start(); err != nil {
			t.Fatalf("start prometheus: %v", err)
		}
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(exited)
		}()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
		base := "http://" + addr
		ready := func() bool {
			deadline := time.Now().Add(20 * time.Second)
			for {
				select {
				case <-exited:
					return false
				default:
				}
				if httpGet(t, base+"/-/ready").code == 200 {
					return true
				}
				if time.Now().After(deadline) || ctx.Err() != nil {
					t.Fatalf("prometheus not ready within 20s:\n%s", out.String())
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		if ready() {
			return base
		}
		lastOut = out.String()
	}
	t.Fatalf("prometheus exited on start, 3 times; last output:\n%s", lastOut)
	return ""
}

// promQuery runs an instant query and returns each series' value keyed by
// the value of label.
func promQuery(t *testing.T, base, query, label string) (map[string]float64, error) {
	t.Helper()
	r := httpGet(t, base+"/api/v1/query?query="+url.QueryEscape(query))
	if r.code != 200 {
		return nil, fmt.Errorf("query %q: %d %s", query, r.code, r.body)
	}
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.body), &resp); err != nil || resp.Status != "success" {
		return nil, fmt.Errorf("query %q: %v %s", query, err, r.body)
	}
	out := map[string]float64{}
	for _, s := range resp.Data.Result {
		v, _ := s.Value[1].(string)
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %v: %w", query, s.Value[1], err)
		}
		out[s.Metric[label]] = f
	}
	return out, nil
}

// TestPrometheusScrapesProxy runs a real Prometheus server (Debian's
// package) against the admin port of a proxy that carried produce and
// fetch traffic, and reads kproxy_requests_total back through the query
// API: the scrape config, the exposition and the metric names work end to
// end. Bounded to 50s; the server is killed at cleanup.
func TestPrometheusScrapesProxy(t *testing.T) {
	bin := requireTool(t, "prometheus")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	t.Cleanup(cancel)
	admin := startWithTraffic(t)
	base := startPrometheus(t, ctx, bin, admin)

	const query = `sum by (group) (kproxy_requests_total{job="kproxy",group=~"produce|fetch"})`
	var got map[string]float64
	var err error
	for {
		got, err = promQuery(t, base, query, "group")
		if err == nil && got["produce"] > 0 && got["fetch"] > 0 {
			break
		}
		if ctx.Err() != nil {
			targets := httpGet(t, base+"/api/v1/targets")
			t.Fatalf("kproxy_requests_total for produce and fetch not in Prometheus: %v (err %v)\ntargets: %s", got, err, targets.body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got["produce"] < 20 {
		t.Errorf("Prometheus has %v produce requests, want at least the 20 sent", got["produce"])
	}
	up, err := promQuery(t, base, `up{job="kproxy"}`, "instance")
	if err != nil || up[admin] != 1 {
		t.Errorf("up{instance=%q} = %v (%v)", admin, up, err)
	}
	t.Logf("Prometheus %s: %s = %v", base, query, got)
}
