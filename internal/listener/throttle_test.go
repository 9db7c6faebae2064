package listener_test

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
	"github.com/kproxy/kproxy/internal/upstream"
)

// TestBrokerThrottleCounted: a broker's quota throttle time shows in
// kproxy_broker_throttle_seconds_total and
// kproxy_broker_throttled_responses_total, per API, both for an answer the
// proxy buffers (Heartbeat) and for one it streams (a large Fetch); an
// answer without throttle counts nothing.
func TestBrokerThrottleCounted(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")}})
	var hbThrottle int32 = 250
	env.Cluster.ControlKey(int16(kmsg.Heartbeat), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		env.Cluster.KeepControl()
		resp := kreq.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ThrottleMillis = hbThrottle
		return resp, nil, true
	})
	env.Cluster.ControlKey(int16(kmsg.Fetch), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		env.Cluster.KeepControl()
		req := kreq.(*kmsg.FetchRequest)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.ThrottleMillis = 1500
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = req.Topics[0].Topic
		p := kmsg.NewFetchResponseTopicPartition()
		p.RecordBatches = bytes.Repeat([]byte{0}, 2*upstream.StreamMin) // opaque to the proxy
		rt.Partitions = append(rt.Partitions, p)
		resp.Topics = append(resp.Topics, rt)
		return resp, nil, true
	})
	c := dialRaw(t, env.Bootstrap(), "throttled")
	heartbeat := func(v int16) {
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.SetVersion(v)
		hb.Group, hb.MemberID, hb.Generation = "g", "m", 1
		if _, err := c.Send(hb); err != nil {
			t.Fatal(err)
		}
		r, err := c.Read()
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Msg.(*kmsg.HeartbeatResponse).ThrottleMillis; got != hbThrottle {
			t.Fatalf("client saw throttle %d, broker said %d", got, hbThrottle)
		}
	}
	heartbeat(4) // flexible response header
	heartbeat(1)
	hbThrottle = 0
	heartbeat(4)

	// A large answer is streamed when the client's writer is idle as its
	// header arrives; under load the writer of the last answer may not be
	// yet, so fetch until one was (each Fetch answer's throttle counts).
	fetches := 0
	for fetches < 20 && sample(t, env.Registry, "kproxy_streamed_responses_total", nil) == 0 {
		if _, err := c.Send(rawclient.FetchRequest("t", 0, 0)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(); err != nil {
			t.Fatal(err)
		}
		fetches++
	}

	get := func(name, api string) float64 { return sample(t, env.Registry, name, map[string]string{"api": api}) }
	if got := get("kproxy_broker_throttled_responses_total", "Heartbeat"); got != 2 {
		t.Errorf("throttled Heartbeat answers = %v, want 2", got)
	}
	if got := get("kproxy_broker_throttle_seconds_total", "Heartbeat"); got != 0.5 {
		t.Errorf("Heartbeat throttle seconds = %v, want 0.5", got)
	}
	if got := sample(t, env.Registry, "kproxy_streamed_responses_total", nil); got != 1 {
		t.Fatalf("streamed answers = %v after %d fetches: the test misses its point", got, fetches)
	}
	if got, want := get("kproxy_broker_throttle_seconds_total", "Fetch"), 1.5*float64(fetches); got != want {
		t.Errorf("Fetch throttle seconds = %v, want %v (%d fetches, the last streamed)", got, want, fetches)
	}
	if got := get("kproxy_broker_throttled_responses_total", "Metadata") + get("kproxy_broker_throttled_responses_total", "ApiVersions"); got != 0 {
		t.Errorf("%v throttled answers counted for APIs the broker did not throttle", got)
	}
}
