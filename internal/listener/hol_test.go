package listener_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

const holWait = 5 * time.Second

type fetchThenProduce struct {
	fetchTook, produceTook time.Duration
	fetchRecords           int
	order                  []int32
}

// runFetchThenProduce sends, on one connection, a long-poll Fetch on an
// empty partition and then a Produce of one record to it.
func runFetchThenProduce(t *testing.T, addr, topic string) fetchThenProduce {
	t.Helper()
	c := dialRaw(t, addr, "raw-client")
	start := time.Now()
	fetchCorr, err := c.Send(rawclient.FetchRequest(topic, 0, holWait))
	if err != nil {
		t.Fatal(err)
	}
	produceCorr, err := c.Send(rawclient.ProduceRequest(topic, 0, 1, []byte("wake-up")))
	if err != nil {
		t.Fatal(err)
	}
	var out fetchThenProduce
	for range 2 {
		resp, err := c.Read()
		if err != nil {
			t.Fatal(err)
		}
		out.order = append(out.order, resp.CorrelationID)
		switch m := resp.Msg.(type) {
		case *kmsg.FetchResponse:
			out.fetchTook = resp.At.Sub(start)
			for _, tp := range m.Topics {
				for _, p := range tp.Partitions {
					if p.ErrorCode != 0 {
						t.Fatalf("fetch error %d", p.ErrorCode)
					}
					if len(p.RecordBatches) > 0 {
						out.fetchRecords++
					}
				}
			}
		case *kmsg.ProduceResponse:
			out.produceTook = resp.At.Sub(start)
			if ec := m.Topics[0].Partitions[0].ErrorCode; ec != 0 {
				t.Fatalf("produce error %d", ec)
			}
		}
	}
	if out.order[0] != fetchCorr || out.order[1] != produceCorr {
		t.Fatalf("answers out of request order: %v, want [%d %d]", out.order, fetchCorr, produceCorr)
	}
	return out
}

// TestSingleSocketFetchThenProduce shows the problem and the fix: direct to
// the broker, a Produce behind a long-poll Fetch waits for the Fetch's full
// MaxWait, so the Fetch comes back empty; through kproxy the Produce reaches
// the broker at once and the Fetch returns early carrying the record.
func TestSingleSocketFetchThenProduce(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Kfake: []kfake.Opt{kfake.SeedTopics(1, "direct", "proxied")}})

	directAddr, _ := leaderAddrs(t, env, "direct")
	direct := runFetchThenProduce(t, directAddr, "direct")
	_, proxiedAddr := leaderAddrs(t, env, "proxied")
	proxied := runFetchThenProduce(t, proxiedAddr, "proxied")

	t.Logf("direct:  fetch returned after %v with %d batches, produce answered after %v", direct.fetchTook, direct.fetchRecords, direct.produceTook)
	t.Logf("kproxy:  fetch returned after %v with %d batches, produce answered after %v", proxied.fetchTook, proxied.fetchRecords, proxied.produceTook)
	if direct.fetchRecords != 0 {
		t.Errorf("direct: the fetch saw the record, so the produce was not held behind it")
	}
	if direct.fetchTook < holWait-500*time.Millisecond {
		t.Errorf("direct: fetch returned after %v, before its MaxWait %v with nothing to return", direct.fetchTook, holWait)
	}
	if proxied.fetchRecords != 1 {
		t.Errorf("kproxy: the fetch returned without the record: the produce did not reach the broker while the fetch waited")
	}
}

// TestHeartbeatReachesBrokerBehindFetch pipelines a Heartbeat behind a
// long-poll Fetch on one client connection and watches the broker side: the
// Heartbeat must arrive while the Fetch is still parked.
func TestHeartbeatReachesBrokerBehindFetch(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Kfake: []kfake.Opt{kfake.SeedTopics(1, "idle")}})
	var heartbeatAt atomic.Int64
	env.Cluster.ControlKey(int16(kmsg.Heartbeat), func(kmsg.Request) (kmsg.Response, error, bool) {
		heartbeatAt.Store(time.Now().UnixNano())
		return nil, nil, false // observe only; the broker answers as usual
	})
	_, addr := leaderAddrs(t, env, "idle")
	c := dialRaw(t, addr, "raw-client")

	start := time.Now()
	fetchCorr, _ := c.Send(rawclient.FetchRequest("idle", 0, holWait))
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "g", "m", 1
	hbCorr, err := c.Send(hb)
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	if first.CorrelationID != fetchCorr || second.CorrelationID != hbCorr {
		t.Fatalf("answers out of request order: %d then %d", first.CorrelationID, second.CorrelationID)
	}
	seen := heartbeatAt.Load()
	if seen == 0 {
		t.Fatal("the broker never saw the heartbeat")
	}
	hbAfter := time.Duration(seen - start.UnixNano())
	t.Logf("heartbeat reached the broker after %v; fetch answered after %v", hbAfter, first.At.Sub(start))
	if time.Unix(0, seen).After(first.At) {
		t.Fatalf("heartbeat reached the broker after the fetch was answered: it was held behind the fetch")
	}
}
