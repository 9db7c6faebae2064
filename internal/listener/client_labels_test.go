package listener_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
	"github.com/kproxy/kproxy/internal/sessioninfo"
)

// clientIDs returns the client_id values of a family.
func clientIDs(t *testing.T, reg prometheus.Gatherer, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "client_id" {
					out[l.GetValue()] += m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	return out
}

// apiVersionsAs opens a session with client id id, sends one ApiVersions
// and reads its answer.
func apiVersionsAs(t *testing.T, addr, id string) {
	t.Helper()
	c := dialRaw(t, addr, id)
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	req.ClientSoftwareName, req.ClientSoftwareVersion = "label-test", "1.0"
	if _, err := c.Send(req); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestClientIDLabelCapped: with metrics.client_id_label, 200 distinct
// client ids make at most metrics.max_client_ids (50) labels plus "other",
// and the 150 sessions past the cap are counted as overflowed; requests
// are all accounted for.
func TestClientIDLabelCapped(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Config: func(c *config.Config) { c.Metrics.ClientIDLabel = true }})
	const ids = 200
	for i := range ids {
		apiVersionsAs(t, env.Bootstrap(), fmt.Sprintf("client-%03d", i))
	}
	apiVersionsAs(t, env.Bootstrap(), "client-000") // an id with a label keeps it

	reqs := clientIDs(t, env.Registry, "kproxy_client_requests_total")
	if len(reqs) != 51 {
		t.Errorf("%d client_id values, want 50 and other", len(reqs))
	}
	if reqs["client-000"] != 2 || reqs["client-049"] != 1 || reqs["other"] != ids-50 {
		t.Errorf("requests: client-000 %v (want 2), client-049 %v (want 1), other %v (want %d)", reqs["client-000"], reqs["client-049"], reqs["other"], ids-50)
	}
	if _, ok := reqs["client-050"]; ok {
		t.Error("client-050, past the cap, has its own label")
	}
	if got := sample(t, env.Registry, "kproxy_client_id_overflow_total", nil); got != ids-50 {
		t.Errorf("kproxy_client_id_overflow_total = %v, want %d", got, ids-50)
	}
	if got := len(clientIDs(t, env.Registry, "kproxy_client_bytes_total")); got != 51 {
		t.Errorf("kproxy_client_bytes_total: %d client_id values, want 51", got)
	}
	// Every request counted, once, under its label or other.
	var sum float64
	for _, v := range reqs {
		sum += v
	}
	if sum != ids+1 {
		t.Errorf("per-client requests sum to %v, want %d", sum, ids+1)
	}
	if in := sample(t, env.Registry, "kproxy_client_bytes_total", map[string]string{"direction": "client_in"}); in != sample(t, env.Registry, "kproxy_bytes_total", map[string]string{"direction": "client_in"}) {
		t.Errorf("per-client client_in bytes %v differ from the total", in)
	}
}

// TestClientIDLabelOffByDefault: no per-client series unless asked for.
func TestClientIDLabelOffByDefault(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{})
	apiVersionsAs(t, env.Bootstrap(), "someone")
	for _, name := range []string{"kproxy_client_requests_total", "kproxy_client_bytes_total", "kproxy_client_request_duration_seconds"} {
		if got := clientIDs(t, env.Registry, name); len(got) != 0 {
			t.Errorf("%s has series %v with metrics.client_id_label off", name, got)
		}
	}
}

func TestClientIDLabelValue(t *testing.T) {
	long := strings.Repeat("é", 100)
	for in, check := range map[string]func(string) bool{
		"":          func(v string) bool { return v == "none" },
		"app-1":     func(v string) bool { return v == "app-1" },
		"bad\xffid": func(v string) bool { return utf8.ValidString(v) && strings.HasPrefix(v, "bad") },
		long:        func(v string) bool { return utf8.ValidString(v) && len(v) <= 64 && strings.HasSuffix(v, "…") },
	} {
		if got := listener.ClientIDLabel(in); !check(got) {
			t.Errorf("label for %q: %q", in, got)
		}
	}
}

// BenchmarkSessionsPage is the cost of one /debug/sessions page (snapshot
// and JSON) with 200 sessions open, each with a lane and a Fetch parked.
func BenchmarkSessionsPage(b *testing.B) {
	env := proxytest.Start(b, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "idle")}})
	addr := env.Proxy.BrokerAddrs()[0]
	const open = 200
	for i := range open {
		c, err := rawclient.Dial(addr)
		if err != nil {
			b.Fatal(err)
		}
		c.ClientID = fmt.Sprintf("bench-%d", i)
		b.Cleanup(func() { c.Close() })
		if _, err := c.Send(rawclient.FetchRequest("idle", 0, time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	for {
		list, total := env.Proxy.Sessions(open)
		if total == open && len(list) == open && list[open-1].InFlight == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		list, total := env.Proxy.Sessions(100)
		if _, err := json.Marshal(sessioninfo.Page{Total: total, Limit: 100, Sessions: list}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSessionsShowHostileIdentityBounded: a client id of 30 000 bytes of
// invalid UTF-8 and a software name of the same reach /debug/sessions cut
// to at most 64 bytes of valid UTF-8.
func TestSessionsShowHostileIdentityBounded(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{})
	junk := strings.Repeat("\xff\xfe", 15000)
	c := dialRaw(t, env.Bootstrap(), junk)
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	req.ClientSoftwareName, req.ClientSoftwareVersion = junk, junk
	if _, err := c.Send(req); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(); err != nil {
		t.Fatal(err)
	}
	list, total := env.Proxy.Sessions(10)
	if total != 1 || len(list) != 1 {
		t.Fatalf("%d sessions listed of %d, want the one", len(list), total)
	}
	s := list[0]
	for what, v := range map[string]string{"client id": s.ClientID, "software name": s.SoftwareName, "software version": s.SoftwareVersion} {
		if len(v) > 64 || !utf8.ValidString(v) || v == "" {
			t.Errorf("%s shown as %d bytes %q", what, len(v), v)
		}
	}
}
