package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/rawclient"
	"github.com/kproxy/kproxy/internal/sessioninfo"
	"github.com/kproxy/kproxy/internal/sidecar"
)

// TestSessionsCommandRendersParkedFetch runs kproxy as `kproxy run` wires it,
// parks a Fetch with a Heartbeat behind it on one client connection, and
// checks that `kproxy sessions` prints the session, its lanes indented
// under it with the parked Fetch's age, and that --json passes the page
// through.
func TestSessionsCommandRendersParkedFetch(t *testing.T) {
	t.Parallel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "idle"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	cfg := loopback.Config(cluster.ListenAddrs())
	p, err := sidecar.Start(context.Background(), cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), prometheus.NewRegistry(), version)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(5 * time.Second) })
	for !p.Server.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	c, err := rawclient.Dial(p.Server.BrokerAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.ClientID = "parked-client"
	if _, err := c.Send(rawclient.FetchRequest("idle", 0, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "g", "m", 1
	if _, err := c.Send(hb); err != nil {
		t.Fatal(err)
	}

	sessions := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(append([]string{"sessions", "--admin", p.Admin.Addr()}, args...), &out, &errOut); code != 0 {
			t.Fatalf("kproxy sessions %v: exit %d: %s", args, code, errOut.String())
		}
		return out.String()
	}
	parked := regexp.MustCompile(`(?m)^    fetch +\S+ +busy +1 in flight +oldest Fetch (\d+ms|[\d.]+s) of 20\.0s$`)
	// The Heartbeat's answer, held behind the Fetch: under load it may
	// come after the Fetch is parked.
	held := regexp.MustCompile(`(?m) 1 +1 (\d+ms|[\d.]+s) +capping 200ms$`)
	deadline := time.Now().Add(20 * time.Second)
	var table string
	for {
		table = sessions()
		if m := parked.FindStringSubmatch(table); m != nil && m[1] != "0ms" && held.MatchString(table) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no parked Fetch with the Heartbeat's answer held behind it in:\n%s", table)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("kproxy sessions:\n%s", table)
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if !strings.HasPrefix(lines[0], "CLIENT ") || !strings.Contains(lines[0], "IN FLIGHT") {
		t.Errorf("header: %q", lines[0])
	}
	var row string
	for _, l := range lines {
		if strings.Contains(l, "parked-client") {
			row = l
		}
	}
	if !regexp.MustCompile(`^127\.0\.0\.1:\d+ +0 +parked-client +- +- +strict \(unknown_client\) `).MatchString(row) {
		t.Errorf("session row: %q", row)
	}
	if !held.MatchString(row) {
		t.Errorf("session row lacks in flight 1, held 1 and the capping fetch wait: %q", row)
	}

	var page sessioninfo.Page
	if err := json.Unmarshal([]byte(sessions("--json")), &page); err != nil || page.Total < 1 {
		t.Fatalf("--json: %v, %+v", err, page)
	}
	// The client leaves before the proxy shuts down, which would otherwise
	// wait for the parked Fetch.
	c.Close()
	for _, total := p.Server.Sessions(0); total > 0; _, total = p.Server.Sessions(0) {
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSessionsCommandMarksStuck renders a page by hand: an overdue request
// gets its lane marked, a page cut by --limit says so.
func TestSessionsCommandMarksStuck(t *testing.T) {
	page := sessioninfo.Page{Total: 3, Limit: 1, Sessions: []sessioninfo.Session{{
		Client: "10.0.0.1:4000", Broker: "bootstrap", ClientID: "app", SoftwareName: "librdkafka", SoftwareVersion: "2.3.0",
		Ordering: "relaxed", OrderingReason: "client_software", AgeMs: 3_600_000, BytesIn: 2048, BytesOut: 5 << 20, Requests: 12, InFlight: 2,
		FetchWait: sessioninfo.FetchWait{State: sessioninfo.FetchWaitOff},
		Lanes: []sessioninfo.Lane{
			{Group: "fetch", Upstream: "kafka-0:9092", State: "busy", InFlight: 1, Oldest: &sessioninfo.Request{API: "Fetch", AgeMs: 400, TimeoutMs: 500}},
			{Group: "coordination", Upstream: "kafka-0:9092", State: "busy", InFlight: 1, Oldest: &sessioninfo.Request{API: "Heartbeat", AgeMs: 45_000, Overdue: true}},
			{Group: "default", Upstream: "kafka-0:9092", State: "idle"},
		},
	}}}
	var out bytes.Buffer
	renderSessions(&out, page)
	got := out.String()
	t.Logf("\n%s", got)
	for _, want := range []string{
		"librdkafka 2.3.0", "relaxed (client_software)", "1h0m0s", "2.0KiB", "5.0MiB",
		"\n    fetch         kafka-0:9092  busy  1 in flight  oldest Fetch 400ms of 500ms\n",
		"\n    default       kafka-0:9092  idle  0 in flight\n",
		"(1 of 3 sessions shown",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !regexp.MustCompile(`\n  ! coordination  kafka-0:9092  busy  1 in flight  oldest Heartbeat 45\.0s +STUCK\n`).MatchString(got) {
		t.Error("the overdue Heartbeat's lane is not marked stuck")
	}
	if strings.Count(got, "!") != 1 || strings.Count(got, "STUCK") != 1 {
		t.Error("a lane on time is marked")
	}
}

// TestSessionsCommandRefused: the reason a refused endpoint gives, or a
// hint when nothing answers, reaches the operator.
func TestSessionsCommandRefused(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"error":"set admin.debug_endpoints: true"}`))
	}))
	defer ts.Close()
	var out, errOut bytes.Buffer
	if code := run([]string{"sessions", "--admin", ts.URL}, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "403 Forbidden: set admin.debug_endpoints: true") {
		t.Errorf("refused: exit %d, %q", code, errOut.String())
	}
	ts.Close()
	errOut.Reset()
	if code := run([]string{"sessions", "--admin", strings.TrimPrefix(ts.URL, "http://")}, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "kubectl port-forward") {
		t.Errorf("nothing listening: exit %d, %q", code, errOut.String())
	}
}

// TestSessionsCommandShowsBridged: a session whose client had old versions
// bridged says which, on a line of its own under the session.
func TestSessionsCommandShowsBridged(t *testing.T) {
	page := sessioninfo.Page{Total: 1, Limit: 10, Sessions: []sessioninfo.Session{{
		Client: "127.0.0.1:4000", Broker: "0", ClientID: "legacy", Ordering: "strict", OrderingReason: "unknown_client",
		FetchWait: sessioninfo.FetchWait{State: sessioninfo.FetchWaitOff}, Bridged: "Produce v2→v3, Fetch v3→v4",
		Lanes: []sessioninfo.Lane{{Group: "produce", Upstream: "kafka-0:9092", State: "idle"}},
	}}}
	var out bytes.Buffer
	renderSessions(&out, page)
	if !regexp.MustCompile(`\n    bridged +Produce v2→v3, Fetch v3→v4 *\n`).MatchString(out.String()) {
		t.Fatalf("no bridged line under the session:\n%s", out.String())
	}
}
