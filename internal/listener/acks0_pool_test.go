package listener_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// TestPoolNeverHandsOnALateAcks0Answer: against a server that answers acks=0
// produces, late (after the answer to a later request), a session that
// sent one and leaves does not give its produce lane to the pool: the next
// session, whose first correlation id is the same, gets the answer to its
// own Produce, never the one the server still owed the first session.
func TestPoolNeverHandsOnALateAcks0Answer(t *testing.T) {
	t.Parallel()
	b := startFakeBroker(t, append(brokerVersions(), kmsg.ApiVersionsResponseApiKey{ApiKey: int16(kmsg.Produce), MaxVersion: 7})...)
	b.lateAcks0Answers.Store(true)
	env := proxytest.StartProxy(t, loopback.Config([]string{b.addr()}), zap.NewNop())

	first := dialRaw(t, env.Bootstrap(), "first")
	corrs, err := first.SendAll(
		rawclient.ProduceRequest("first", 0, 0, []byte("fire and forget")),
		rawclient.ProduceRequest("first", 0, 1, []byte("acked")))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := first.Read(); err != nil || r.CorrelationID != corrs[1] {
		t.Fatalf("first session read %+v, %v; want the answer to %d", r, err, corrs[1])
	}
	first.Close()
	waitFor(t, "the first session to close", func() bool { return upstreamConnections(t, env) == 0 })

	next := dialRaw(t, env.Bootstrap(), "next")
	corr, err := next.Send(rawclient.ProduceRequest("next", 0, 1, []byte("mine")))
	if err != nil {
		t.Fatal(err)
	}
	if corr != corrs[0] {
		t.Fatalf("the next session's correlation id %d, want %d (the first session's acks=0 produce)", corr, corrs[0])
	}
	r, err := next.Read()
	if err != nil {
		t.Fatalf("next session: %v", err)
	}
	if topic := r.Msg.(*kmsg.ProduceResponse).Topics[0].Topic; topic != "next" {
		t.Fatalf("the next session got the answer to a Produce to %q", topic)
	}
	if n := testutil.ToFloat64(env.Metrics.PoolDiscards.WithLabelValues(metrics.PoolDiscardAcks0)); n != 1 {
		t.Fatalf("acks0 discards %v, want 1 (the first session's produce lane)", n)
	}
}
