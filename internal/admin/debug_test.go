package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap/zaptest"

	"github.com/kproxy/kproxy/internal/admin"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
	"github.com/kproxy/kproxy/internal/sessioninfo"
)

func TestDebugAllowed(t *testing.T) {
	for _, c := range []struct {
		listen  string
		enabled bool
		want    bool
	}{
		{"127.0.0.1:9644", false, true},
		{"[::1]:9644", false, true},
		{"localhost:9644", false, true},
		{"127.0.0.2:0", false, true},
		{"0.0.0.0:9644", false, false},
		{":9644", false, false},
		{"[::]:9644", false, false},
		{"10.0.0.7:9644", false, false},
		{"kproxy.internal:9644", false, false},
		{"garbage", false, false},
		{"0.0.0.0:9644", true, true},
		{":9644", true, true},
	} {
		if got := admin.DebugAllowed(c.listen, c.enabled); got != c.want {
			t.Errorf("DebugAllowed(%q, %v) = %v, want %v", c.listen, c.enabled, got, c.want)
		}
	}
}

type fakeSessions struct{ n int }

func (f fakeSessions) Sessions(limit int) ([]sessioninfo.Session, int) {
	var out []sessioninfo.Session
	for i := range min(limit, f.n) {
		out = append(out, sessioninfo.Session{Client: "127.0.0.1:" + string(rune('0'+i%10)), ClientID: "c"})
	}
	return out, f.n
}

// TestDebugSessionsRefusedOffLoopback: an admin server listening on every
// interface answers 403 for /debug/sessions, and says which key allows it,
// unless admin.debug_endpoints is set; /metrics is served either way.
func TestDebugSessionsRefusedOffLoopback(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	var rd fakeReadiness
	for _, enabled := range []bool{false, true} {
		h := admin.Handler(reg, &rd, zaptest.NewLogger(t), admin.DebugSessions(fakeSessions{3}, admin.DebugAllowed("0.0.0.0:0", enabled)))
		adm, err := admin.Listen("0.0.0.0:0", h, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = adm.Shutdown(context.Background()) })
		url := "http://" + adm.Addr()
		r := get(t, url+"/debug/sessions")
		switch {
		case !enabled && (r.code != http.StatusForbidden || !strings.Contains(r.body, "admin.debug_endpoints")):
			t.Errorf("off loopback, not enabled: %d %q; want 403 naming admin.debug_endpoints", r.code, r.body)
		case !enabled && strings.Contains(r.body, "127.0.0.1"):
			t.Errorf("the refusal leaks session data: %q", r.body)
		case enabled && r.code != http.StatusOK:
			t.Errorf("off loopback, enabled: %d %q", r.code, r.body)
		}
		if r := get(t, url+"/metrics"); r.code != http.StatusOK {
			t.Errorf("/metrics: %d", r.code)
		}
	}
}

func TestDebugSessionsLimit(t *testing.T) {
	t.Parallel()
	var rd fakeReadiness
	ts := httptest.NewServer(admin.Handler(prometheus.NewRegistry(), &rd, zaptest.NewLogger(t), admin.DebugSessions(fakeSessions{5000}, true)))
	t.Cleanup(ts.Close)
	for q, want := range map[string]int{"": admin.DefaultSessionLimit, "?limit=3": 3, "?limit=0": 0, "?limit=99999": admin.MaxSessionLimit} {
		page := sessionsPage(t, ts.URL+"/debug/sessions"+q)
		if len(page.Sessions) != want || page.Total != 5000 || page.Limit != want {
			t.Errorf("%q: %d sessions of %d, limit %d; want %d of 5000", q, len(page.Sessions), page.Total, page.Limit, want)
		}
	}
	for _, q := range []string{"?limit=-1", "?limit=x"} {
		if r := get(t, ts.URL+"/debug/sessions"+q); r.code != http.StatusBadRequest {
			t.Errorf("%q: %d, want 400", q, r.code)
		}
	}
}

func sessionsPage(t *testing.T, url string) sessioninfo.Page {
	t.Helper()
	r := get(t, url)
	if r.code != http.StatusOK || r.contentType != "application/json" {
		t.Fatalf("%s: %d %s %q", url, r.code, r.contentType, r.body)
	}
	var page sessioninfo.Page
	dec := json.NewDecoder(strings.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&page); err != nil {
		t.Fatalf("%s: %v: %q", url, err, r.body)
	}
	return page
}

// sessionsEnv is a kfake cluster behind kproxy with its admin server on
// loopback, as `kproxy run` wires it.
func sessionsEnv(t *testing.T, topics ...string) (*proxytest.Env, string) {
	t.Helper()
	env := proxytest.Start(t, proxytest.Options{Kfake: []kfake.Opt{kfake.SeedTopics(1, topics...)}})
	var rd fakeReadiness
	h := admin.Handler(env.Registry, &rd, zaptest.NewLogger(t), admin.DebugSessions(env.Proxy, admin.DebugAllowed("127.0.0.1:0", false)))
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return env, ts.URL + "/debug/sessions"
}

// waitSession polls url until a session satisfies match.
func waitSession(t *testing.T, url, what string, match func(sessioninfo.Session) bool) sessioninfo.Session {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last sessioninfo.Page
	for time.Now().Before(deadline) {
		last = sessionsPage(t, url)
		for _, s := range last.Sessions {
			if match(s) {
				return s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(last, "", "  ")
	t.Fatalf("no session %s in /debug/sessions:\n%s", what, b)
	return sessioninfo.Session{}
}

func lane(s sessioninfo.Session, group string) (sessioninfo.Lane, bool) {
	i := slices.IndexFunc(s.Lanes, func(l sessioninfo.Lane) bool { return l.Group == group })
	if i < 0 {
		return sessioninfo.Lane{}, false
	}
	return s.Lanes[i], true
}

// TestDebugSessionsShowsKgoGroupMember: a kgo consumer group member shows
// with its client id, KIP-511 software name, ordering and lanes, and no
// session carries anything that looks like a credential.
func TestDebugSessionsShowsKgoGroupMember(t *testing.T) {
	t.Parallel()
	env, url := sessionsEnv(t, "orders")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Bootstrap()), kgo.ClientID("orders-app"),
		kgo.ConsumeTopics("orders"), kgo.ConsumerGroup("orders-group"), kgo.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	go func() {
		for ctx.Err() == nil {
			cl.PollFetches(ctx)
		}
	}()
	s := waitSession(t, url, "of a kgo group member with a fetch lane", func(s sessioninfo.Session) bool {
		l, fetching := lane(s, "fetch")
		// A Fetch is listed from the moment it is read; its lane shows an
		// upstream once dialed.
		return s.ClientID == "orders-app" && fetching && l.Upstream != ""
	})
	if s.SoftwareName != "kgo" || s.SoftwareVersion == "" {
		t.Errorf("software %q %q, want kgo and a version", s.SoftwareName, s.SoftwareVersion)
	}
	if s.Ordering != "strict" || s.OrderingReason != "client_software" {
		t.Errorf("ordering %q because %q; want strict because client_software (kgo)", s.Ordering, s.OrderingReason)
	}
	if s.Broker == "" || s.Client == "" || s.Requests < 1 || s.BytesIn <= 0 || s.BytesOut <= 0 {
		t.Errorf("session lacks its basics: %+v", s)
	}
	l, _ := lane(s, "fetch")
	if l.Upstream == "" || (l.State != sessioninfo.LaneBusy && l.State != sessioninfo.LaneIdle) {
		t.Errorf("fetch lane: %+v", l)
	}
	// kgo joins and heartbeats on connections of their own to the
	// coordinator; each shows with its lane.
	for _, g := range []string{"group", "coordination"} {
		waitSession(t, url, "of the group member with a "+g+" lane", func(s sessioninfo.Session) bool {
			_, ok := lane(s, g)
			return s.ClientID == "orders-app" && ok
		})
	}
}

// TestDebugSessionsShowsParkedRequest: a Heartbeat pipelined behind a
// long-poll Fetch on one connection. The page shows the Fetch in flight on
// the fetch lane with an age that grows, the Heartbeat's answer held for
// the client behind it, and the fetch wait budget capping.
func TestDebugSessionsShowsParkedRequest(t *testing.T) {
	t.Parallel()
	env, url := sessionsEnv(t, "idle")
	leader := env.Cluster.LeaderFor("idle", 0)
	c, err := rawclient.Dial(env.Proxy.BrokerAddrs()[leader])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.ClientID = "parked-client"
	const wait = 10 * time.Second
	if _, err := c.Send(rawclient.FetchRequest("idle", 0, wait)); err != nil {
		t.Fatal(err)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "g", "m", 1
	if _, err := c.Send(hb); err != nil {
		t.Fatal(err)
	}
	parked := func(minAge int64) func(sessioninfo.Session) bool {
		return func(s sessioninfo.Session) bool {
			l, ok := lane(s, "fetch")
			return s.ClientID == "parked-client" && ok && l.Oldest != nil && l.Oldest.AgeMs >= minAge && s.Held.Answers == 1
		}
	}
	first := waitSession(t, url, "with a Fetch parked and a held Heartbeat", parked(0))
	firstAge := mustLane(t, first, "fetch").Oldest.AgeMs
	later := waitSession(t, url, "whose parked Fetch has aged", parked(firstAge+300))
	l := mustLane(t, later, "fetch")
	if l.Oldest.API != "Fetch" || l.Oldest.TimeoutMs != wait.Milliseconds() || l.Oldest.Overdue || l.InFlight != 1 || l.State != sessioninfo.LaneBusy {
		t.Errorf("fetch lane: %+v, oldest %+v", l, *l.Oldest)
	}
	if later.Held.LongestMs < 300 || later.InFlight != 1 {
		t.Errorf("held %+v, in flight %d: the Heartbeat's answer should wait behind the Fetch", later.Held, later.InFlight)
	}
	if later.FetchWait.State != sessioninfo.FetchWaitCapping || later.FetchWait.BudgetMs != 200 {
		t.Errorf("fetch wait %+v: an answer held behind a long poll arms the cap", later.FetchWait)
	}
	if later.Ordering != "strict" {
		t.Errorf("ordering %q", later.Ordering)
	}
	if hbLane, ok := lane(later, "coordination"); !ok || hbLane.InFlight != 0 {
		t.Errorf("coordination lane %+v: the Heartbeat was answered and is held, not in flight", hbLane)
	}
	if page := sessionsPage(t, url); page.Sessions[0].ClientID != "parked-client" {
		t.Errorf("the session with the oldest request in flight is not listed first: %q", page.Sessions[0].ClientID)
	}
	// The client leaves before the proxy shuts down, which would otherwise
	// wait for the parked Fetch.
	c.Close()
	for _, total := env.Proxy.Sessions(0); total > 0; _, total = env.Proxy.Sessions(0) {
		time.Sleep(10 * time.Millisecond)
	}
}

func mustLane(t *testing.T, s sessioninfo.Session, group string) sessioninfo.Lane {
	t.Helper()
	l, ok := lane(s, group)
	if !ok || l.Oldest == nil {
		t.Fatalf("no %s lane with a request in flight: %+v", group, s.Lanes)
	}
	return l
}

// TestDebugSessionsShowsKcat: kcat (librdkafka) as a consumer group member
// shows with its client id and KIP-511 software name. It runs wherever kcat
// is installed and is required in CI.
func TestDebugSessionsShowsKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kcat not installed; CI requires it (.ci/install-compat-deps.sh)")
		}
		t.Skip("kcat not installed")
	}
	t.Parallel()
	env, url := sessionsEnv(t, "kcat-topic")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, "-b", env.Bootstrap(), "-G", "kcat-group", "-X", "client.id=kcat-sessions", "-q", "kcat-topic")
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("kcat stderr:\n%s", errOut.String())
		}
	}()
	s := waitSession(t, url, "of kcat with a coordination lane", func(s sessioninfo.Session) bool {
		_, hb := lane(s, "coordination")
		return s.ClientID == "kcat-sessions" && hb
	})
	if s.SoftwareName == "" || s.Ordering == "" {
		t.Errorf("kcat session: software %q, ordering %q", s.SoftwareName, s.Ordering)
	}
	if s.SoftwareName == "librdkafka" && s.Ordering != "relaxed" {
		t.Errorf("librdkafka session ordered %q", s.Ordering)
	}
}
