package listener_test

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

func TestBadInputClosesOnlyThatSession(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")}})
	healthy := newClient(t, env.Bootstrap())
	roundTripWorks(t, healthy, "before")

	garbage := make([]byte, 4096)
	_, _ = rand.Read(garbage)
	garbage[0] = 0x7f // a size prefix far over the limit, whatever the rest is
	oversized := binary.BigEndian.AppendUint32(nil, uint32(env.Config.Limits.MaxFrameBytes+1))
	negative := binary.BigEndian.AppendUint32(nil, 0xffff_fff0)
	truncated := append(binary.BigEndian.AppendUint32(nil, 100), make([]byte, 20)...)
	tlsHello := []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}
	httpGet := []byte("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")

	cases := []struct {
		name, reason string
		payload      []byte
		closeWrite   bool
	}{
		{"garbage burst", "oversized", garbage, false},
		{"oversized size prefix", "oversized", oversized, false},
		{"negative size prefix", "negative_size", negative, false},
		{"truncated frame", "truncated", truncated, true},
		{"tls on plaintext", "tls_on_plaintext", tlsHello, false},
		{"http on kafka port", "http_on_kafka_port", httpGet, false},
	}
	for _, tc := range cases {
		before := testutil.ToFloat64(env.Metrics.FrameErrors.WithLabelValues(tc.reason))
		conn, err := net.Dial("tcp", env.Bootstrap())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(tc.payload); err != nil {
			t.Fatal(err)
		}
		if tc.closeWrite {
			_ = conn.(*net.TCPConn).CloseWrite()
		}
		expectClosed(t, conn)
		conn.Close()
		waitFor(t, tc.name+" counted", func() bool {
			return testutil.ToFloat64(env.Metrics.FrameErrors.WithLabelValues(tc.reason)) == before+1
		})
		roundTripWorks(t, healthy, tc.name)
	}
}

// TestAcksZeroHoldsNoSlot: the broker never answers acks=0, so the request
// behind it must be answered next, and nothing stays in flight.
func TestAcksZeroHoldsNoSlot(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")}})
	_, addr := leaderAddrs(t, env, "t")
	c := dialRaw(t, addr, "raw-client")
	for i := range 3 {
		if _, err := c.Send(rawclient.ProduceRequest("t", 0, 0, []byte("fire-and-forget-"+strconv.Itoa(i)))); err != nil {
			t.Fatal(err)
		}
	}
	metaCorr, _ := c.Send(kmsg.NewPtrMetadataRequest())
	resp, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	if resp.CorrelationID != metaCorr {
		t.Fatalf("first answer has correlation id %d, want the metadata request's %d", resp.CorrelationID, metaCorr)
	}
	if got := testutil.ToFloat64(env.Metrics.InflightRequests.WithLabelValues("produce")); got != 0 {
		t.Fatalf("produce in flight = %v after acks=0 produces, want 0", got)
	}
	cl := newClient(t, env.Bootstrap(), kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	consumeExactly(t, ctxTimeout(t, 20*time.Second), cl, 3)
}

// TestAcksZeroLaneIdlesOut: a lane that carried only acks=0 produces is
// closed by kproxy's idle timer like any quiet lane, before the broker's
// own idle close (connections.max.idle.ms), which would have failed the
// session as if a produce had failed; the session lives on, and its next
// produce dials again. Before, such a lane waited for an answer Kafka never
// sends, and stayed open.
func TestAcksZeroLaneIdlesOut(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	env := proxytest.Start(t, proxytest.Options{Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")},
		Config: func(c *config.Config) { c.Upstream.IdleTimeout, c.Upstream.Pool.IdleTimeout = idle, idle }})
	_, addr := leaderAddrs(t, env, "t")
	c := dialRaw(t, addr, "fire-and-forget")
	produceLanes := func() float64 {
		return sample(t, env.Registry, "kproxy_upstream_connections", map[string]string{"group": "produce"})
	}
	for i := range 2 {
		if _, err := c.Send(rawclient.ProduceRequest("t", 0, 0, []byte("record-"+strconv.Itoa(i)))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the produce lane to open", func() bool { return produceLanes() == 1 })
		waitFor(t, "the acks=0 produce lane to idle out", func() bool { return produceLanes() == 0 })
	}
	corr, err := c.Send(kmsg.NewPtrMetadataRequest())
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := c.Read(); err != nil || resp.CorrelationID != corr {
		t.Fatalf("the producer's session after its lane idled out: answer %v, %v", resp.CorrelationID, err)
	}
	if got := sample(t, env.Registry, "kproxy_session_closes_total", nil); got != 0 {
		t.Fatalf("%v sessions closed, want the producer's to live on", got)
	}
	cl := newClient(t, env.Bootstrap(), kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	consumeExactly(t, ctxTimeout(t, 20*time.Second), cl, 2)
}

// TestUpstreamDropClosesSessionIdempotentExactlyOnce: kfake drops the
// connection carrying a produce; the proxy must close the client session
// (never answer for the broker), and the idempotent producer's retries must
// leave every record exactly once.
func TestUpstreamDropClosesSessionIdempotentExactlyOnce(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Kfake: []kfake.Opt{kfake.SeedTopics(3, "t")}})
	var produces, drops atomic.Int32
	env.Cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		env.Cluster.KeepControl()
		if n := produces.Add(1); n == 5 || n == 20 {
			drops.Add(1)
			return nil, errors.New("injected connection drop"), true
		}
		return nil, nil, false
	})
	const n = 3000
	ctx := ctxTimeout(t, 60*time.Second)
	producer := newClient(t, env.Bootstrap(), kgo.DefaultProduceTopic("t"), kgo.MaxBufferedRecords(100))
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range n {
		wg.Add(1)
		producer.Produce(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
			wg.Done()
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d records failed", failed.Load())
	}
	if drops.Load() != 2 {
		t.Fatalf("injected %d drops, want 2", drops.Load())
	}
	if got := testutil.ToFloat64(env.Metrics.SessionCloses.WithLabelValues("upstream_failed")); got < 1 {
		t.Fatalf("session closes for upstream failure = %v, want >= 1", got)
	}
	consumer := newClient(t, env.Bootstrap(), kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	consumeExactly(t, ctx, consumer, n)
	// Nothing beyond n: a duplicate would have been reported above, and
	// a short poll shows no stragglers.
	short := ctxTimeout(t, time.Second)
	if fs := consumer.PollFetches(short); fs.NumRecords() > 0 {
		t.Fatalf("%d records beyond the %d produced", fs.NumRecords(), n)
	}
}
