package listener_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// parkedFetch is how long each round's Fetch waits on its empty partition.
const parkedFetch = 3 * time.Second

type round struct {
	fetchAt, heartbeatAt time.Duration // answer arrival, from the round's start
	heartbeatFirst       bool
}

// fetchThenHeartbeat runs rounds of [Fetch parked for wait on an empty
// partition, then Heartbeat] pipelined on one connection.
func fetchThenHeartbeat(t *testing.T, c *rawclient.Conn, topic string, rounds int, wait time.Duration) []round {
	t.Helper()
	var out []round
	for range rounds {
		start := time.Now()
		fetchCorr, err := c.Send(rawclient.FetchRequest(topic, 0, wait))
		if err != nil {
			t.Fatal(err)
		}
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.Group, hb.MemberID, hb.Generation = "g", "m", 1
		if _, err := c.Send(hb); err != nil {
			t.Fatal(err)
		}
		var r round
		for i := range 2 {
			resp, err := c.Read()
			if err != nil {
				t.Fatal(err)
			}
			if resp.CorrelationID == fetchCorr {
				r.fetchAt = resp.At.Sub(start)
			} else {
				r.heartbeatAt = resp.At.Sub(start)
				r.heartbeatFirst = i == 0
			}
		}
		t.Logf("round %d: heartbeat answer after %v, fetch answer after %v", len(out)+1, r.heartbeatAt.Round(time.Millisecond), r.fetchAt.Round(time.Millisecond))
		out = append(out, r)
	}
	return out
}

func startOrdering(t *testing.T, ordering string, budget time.Duration, rules ...config.ClientRule) (*proxytest.Env, string) {
	t.Helper()
	env := proxytest.Start(t, proxytest.Options{
		Brokers: 1,
		Kfake:   []kfake.Opt{kfake.SeedTopics(1, "idle")},
		Config: func(c *config.Config) {
			c.Routing.Ordering = ordering
			c.Routing.FetchWaitBudget = budget
			c.Routing.ClientRules = rules
		},
	})
	_, addr := leaderAddrs(t, env, "idle")
	return env, addr
}

// TestRelaxedHeartbeatAnswerFirst: relaxed ordering writes the Heartbeat's
// answer as soon as the broker gives it, while the Fetch before it is still
// parked; the Fetch itself is left alone.
func TestRelaxedHeartbeatAnswerFirst(t *testing.T) {
	t.Parallel()
	env, addr := startOrdering(t, config.OrderingRelaxed, 200*time.Millisecond)
	for i, r := range fetchThenHeartbeat(t, dialRaw(t, addr, "raw-client"), "idle", 3, parkedFetch) {
		if !r.heartbeatFirst || r.heartbeatAt > r.fetchAt-time.Second {
			t.Errorf("round %d: heartbeat answered after %v, fetch after %v: want the heartbeat first, well before the fetch", i+1, r.heartbeatAt, r.fetchAt)
		}
		if r.fetchAt < parkedFetch-500*time.Millisecond {
			t.Errorf("round %d: fetch answered after %v: a relaxed session's fetch wait was changed", i+1, r.fetchAt)
		}
	}
	if n := testutil.ToFloat64(env.Metrics.FetchWaitCapped); n != 0 {
		t.Errorf("kproxy_fetch_wait_capped_total = %v for a relaxed session", n)
	}
}

// TestStrictFetchWaitBudget: a strict session whose Heartbeat answer was
// held behind a Fetch gets its following Fetches capped to the budget, so
// from round 2 the Heartbeat answer arrives within the budget plus slack.
func TestStrictFetchWaitBudget(t *testing.T) {
	t.Parallel()
	const budget = 200 * time.Millisecond
	const slack = 1300 * time.Millisecond // a loaded 2-core CI machine
	env, addr := startOrdering(t, config.OrderingStrict, budget)
	rounds := fetchThenHeartbeat(t, dialRaw(t, addr, "raw-client"), "idle", 3, parkedFetch)
	for i, r := range rounds {
		if r.heartbeatFirst {
			t.Errorf("round %d: heartbeat answer before the fetch's on a strict session", i+1)
		}
	}
	if r := rounds[0]; r.heartbeatAt < parkedFetch-500*time.Millisecond {
		t.Errorf("round 1: heartbeat answered after %v: nothing had been held yet, so the first fetch should park for %v", r.heartbeatAt, parkedFetch)
	}
	for i, r := range rounds[1:] {
		if r.heartbeatAt > budget+slack {
			t.Errorf("round %d: heartbeat answered after %v, want within the %v budget + %v slack", i+2, r.heartbeatAt, budget, slack)
		}
	}
	if n := testutil.ToFloat64(env.Metrics.FetchWaitCapped); n != 2 {
		t.Errorf("kproxy_fetch_wait_capped_total = %v, want 2 (rounds 2 and 3)", n)
	}
	if n := testutil.CollectAndCount(env.Metrics.ResponseHold); n == 0 {
		t.Error("kproxy_response_hold_seconds has no series")
	}
	if avoided := testutil.ToFloat64(env.Metrics.HolWaitAvoided.WithLabelValues("coordination")); avoided < (parkedFetch - time.Second).Seconds() {
		t.Errorf("kproxy_hol_wait_avoided_seconds_total{group=coordination} = %v, want about the first round's %v", avoided, parkedFetch)
	}
}

// TestStrictBudgetOff: with the budget at 0 every Heartbeat answer waits
// for the full long poll before it.
func TestStrictBudgetOff(t *testing.T) {
	t.Parallel()
	env, addr := startOrdering(t, config.OrderingStrict, 0)
	for i, r := range fetchThenHeartbeat(t, dialRaw(t, addr, "raw-client"), "idle", 3, parkedFetch) {
		if r.heartbeatFirst || r.heartbeatAt < parkedFetch-500*time.Millisecond {
			t.Errorf("round %d: heartbeat answered after %v, fetch after %v: want after the parked fetch", i+1, r.heartbeatAt, r.fetchAt)
		}
	}
	if n := testutil.ToFloat64(env.Metrics.FetchWaitCapped); n != 0 {
		t.Errorf("kproxy_fetch_wait_capped_total = %v with the budget off", n)
	}
}

// TestAutoOrdering: auto picks relaxed from a librdkafka ClientSoftwareName
// or a relaxed client rule, strict for everyone else, and a strict rule
// overrides the software name.
func TestAutoOrdering(t *testing.T) {
	t.Parallel()
	env, addr := startOrdering(t, config.OrderingAuto, 0,
		config.ClientRule{ClientID: "^compat-kafkajs$", Ordering: config.OrderingRelaxed},
		config.ClientRule{ClientID: "^pinned-", Ordering: config.OrderingStrict},
	)
	cases := []struct {
		name, clientID, software string
		apiVersions              int16 // -1: none sent
		relaxed                  bool
	}{
		{"librdkafka", "rdkafka", "librdkafka", 3, true},
		{"confluent-kafka-python", "rdkafka", "confluent-kafka-python", 4, true},
		{"sarama", "sarama", "sarama", 3, false},
		{"kgo", "kgo", "kgo", 4, false},
		{"kafkajs by rule", "compat-kafkajs", "", 2, true},
		{"kafkajs default id", "kafkajs", "", 2, false},
		{"rule beats name", "pinned-app", "librdkafka", 3, false},
		{"no ApiVersions", "raw-client", "", -1, false},
	}
	var relaxed float64
	for _, tc := range cases {
		if tc.relaxed {
			relaxed++
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, addr, tc.clientID)
			if tc.apiVersions >= 0 {
				req := kmsg.NewPtrApiVersionsRequest()
				req.SetVersion(tc.apiVersions)
				req.ClientSoftwareName, req.ClientSoftwareVersion = tc.software, "1.0"
				if _, err := c.Send(req); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Read(); err != nil {
					t.Fatal(err)
				}
			}
			r := fetchThenHeartbeat(t, c, "idle", 1, time.Second)[0]
			if r.heartbeatFirst != tc.relaxed {
				t.Errorf("heartbeat answer first = %v, want %v (relaxed)", r.heartbeatFirst, tc.relaxed)
			}
		})
	}
	t.Cleanup(func() {
		if got := testutil.ToFloat64(env.Metrics.SessionOrdering.WithLabelValues("relaxed")); got != relaxed {
			t.Errorf(`kproxy_session_ordering_total{ordering="relaxed"} = %v, want %v`, got, relaxed)
		}
		if got := testutil.ToFloat64(env.Metrics.SessionOrdering.WithLabelValues("strict")); got < float64(len(cases))-relaxed {
			t.Errorf(`kproxy_session_ordering_total{ordering="strict"} = %v, want at least %v`, got, float64(len(cases))-relaxed)
		}
	})
}
