package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/kproxy/kproxy/internal/admin"
	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/proxytest"
)

type fakeReadiness struct{ ready atomic.Bool }

func (f *fakeReadiness) Ready() bool { return f.ready.Load() }
func (f *fakeReadiness) NotReadyReason() string {
	if f.ready.Load() {
		return ""
	}
	return "upstream metadata not fetched: every seed unreachable"
}

type reply struct {
	code        int
	contentType string
	body        string
}

func get(t *testing.T, url string) reply {
	t.Helper()
	return do(t, http.MethodGet, url)
}

func do(t *testing.T, method, url string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header.Get("Content-Type"), string(body)}
}

// readyzBody decodes a /readyz answer, failing on anything but the
// documented JSON shape.
func readyzBody(t *testing.T, r reply) (ready bool, reason string) {
	t.Helper()
	var v struct {
		Ready  *bool  `json:"ready"`
		Reason string `json:"reason"`
	}
	dec := json.NewDecoder(strings.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil || v.Ready == nil || r.contentType != "application/json" {
		t.Fatalf("/readyz: not the JSON answer (%s, %v): %q", r.contentType, err, r.body)
	}
	return *v.Ready, v.Reason
}

func TestHandlerEndpoints(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	metrics.New(reg, "v-test")
	var rd fakeReadiness
	ts := httptest.NewServer(admin.Handler(reg, &rd, zaptest.NewLogger(t)))
	t.Cleanup(ts.Close)

	if r := get(t, ts.URL+"/healthz"); r.code != http.StatusOK {
		t.Errorf("/healthz: %d %q", r.code, r.body)
	}

	r := get(t, ts.URL+"/readyz")
	ready, reason := readyzBody(t, r)
	if r.code != http.StatusServiceUnavailable || ready || reason != "upstream metadata not fetched: every seed unreachable" {
		t.Errorf("/readyz before ready: %d %q", r.code, r.body)
	}
	rd.ready.Store(true)
	r = get(t, ts.URL+"/readyz")
	if ready, reason := readyzBody(t, r); r.code != http.StatusOK || !ready || reason != "" {
		t.Errorf("/readyz when ready: %d %q", r.code, r.body)
	}

	r = get(t, ts.URL+"/metrics")
	if r.code != http.StatusOK || !strings.HasPrefix(r.contentType, "text/plain") {
		t.Fatalf("/metrics: %d %s", r.code, r.contentType)
	}
	for _, want := range []string{
		`kproxy_build_info{goversion="go`, `version="v-test"} 1`,
		"kproxy_client_connections 0", "kproxy_client_connections_total 0",
		"go_goroutines ", "process_start_time_seconds ",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	if r := get(t, ts.URL+"/nope"); r.code != http.StatusNotFound {
		t.Errorf("/nope: %d, want 404", r.code)
	}
	if r := do(t, http.MethodPost, ts.URL+"/healthz"); r.code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d, want 405", r.code)
	}
}

// waitReadyz polls /readyz until it answers code, within 15s.
func waitReadyz(t *testing.T, url string, code int) reply {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := get(t, url+"/readyz")
		if r.code == code {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %q, want %d", r.code, r.body, code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReadyzFollowsTheProxy runs the admin server over a real proxy whose
// only seed is down: not ready with the reason, ready once the broker comes
// up and metadata is fetched, not ready again while shutting down — while
// /healthz answers 200 throughout.
func TestReadyzFollowsTheProxy(t *testing.T) {
	t.Parallel()
	port := proxytest.FreePort(t)
	seed := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg := loopback.Config([]string{seed})
	cfg.Upstream.DialTimeout = 2 * time.Second
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	reg := prometheus.NewRegistry()
	srv, err := listener.New(cfg, log, metrics.New(reg, "test"))
	if err != nil {
		t.Fatal(err)
	}
	adm, err := admin.Listen(cfg.Admin.Listen, admin.Handler(reg, srv, log), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = adm.Shutdown(context.Background()) })
	url := "http://" + adm.Addr()

	r := get(t, url+"/readyz")
	if ready, reason := readyzBody(t, r); r.code != http.StatusServiceUnavailable || ready || reason != "upstream metadata not fetched yet" {
		t.Errorf("/readyz before Start: %d %q", r.code, r.body)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = srv.Shutdown(context.Background())
		}
	})
	r = get(t, url+"/readyz")
	ready, reason := readyzBody(t, r)
	if r.code != http.StatusServiceUnavailable || ready ||
		!strings.HasPrefix(reason, "upstream metadata not fetched: every seed unreachable (seed "+seed+": dial tcp") {
		t.Errorf("/readyz with the seed down: %d %q", r.code, r.body)
	}
	if r := get(t, url+"/healthz"); r.code != http.StatusOK {
		t.Errorf("/healthz while not ready: %d", r.code)
	}

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port))
	if err != nil {
		t.Fatalf("kfake on port %d: %v", port, err)
	}
	t.Cleanup(cluster.Close)
	r = waitReadyz(t, url, http.StatusOK)
	if ready, _ := readyzBody(t, r); !ready {
		t.Errorf("/readyz once metadata is fetched: %q", r.body)
	}
	if len(srv.BrokerAddrs()) != 1 {
		t.Errorf("ready before the broker's listener is bound: %v", srv.BrokerAddrs())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	stopped = true
	r = get(t, url+"/readyz")
	if ready, reason := readyzBody(t, r); r.code != http.StatusServiceUnavailable || ready || reason != "shutting down" {
		t.Errorf("/readyz after shutdown: %d %q", r.code, r.body)
	}
	if r := get(t, url+"/healthz"); r.code != http.StatusOK {
		t.Errorf("/healthz after the proxy stopped: %d (the admin server still serves)", r.code)
	}
	if err := adm.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", adm.Addr(), time.Second); err == nil {
		t.Error("admin port still accepts after Shutdown")
	}
}
