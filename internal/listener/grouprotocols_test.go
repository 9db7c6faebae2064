package listener_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/proxytest"
)

// brokerTap sits under kfake's listener and records, per upstream
// connection, when each request was read and when its answer was written:
// what kproxy's lanes look like from the broker's side.
type brokerTap struct {
	mu    sync.Mutex
	conns int
	reqs  []*tappedRequest
}

type tappedRequest struct {
	conn     int
	key      int16
	corr     int32
	read     time.Time
	answered time.Time // zero while in flight
}

func (b *brokerTap) listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	return &tapListener{Listener: ln, b: b}, nil
}

type tapListener struct {
	net.Listener
	b *brokerTap
}

func (l *tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.b.mu.Lock()
	l.b.conns++
	id := l.b.conns
	l.b.mu.Unlock()
	return &tapConn{Conn: c, b: l.b, id: id, inFlight: map[int32]*tappedRequest{}}, nil
}

type tapConn struct {
	net.Conn
	b  *brokerTap
	id int

	rbuf, wbuf []byte                   // reads and writes are each serial
	inFlight   map[int32]*tappedRequest // guarded by b.mu
}

// frames calls fn with the first 8 bytes after the size prefix of every
// complete frame in *buf, and keeps the rest.
func frames(buf *[]byte, fn func(head []byte)) {
	for len(*buf) >= 12 {
		size := int(binary.BigEndian.Uint32(*buf))
		if len(*buf) < 4+size {
			return
		}
		fn((*buf)[4:12])
		*buf = (*buf)[4+size:]
	}
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.rbuf = append(c.rbuf, p[:n]...)
	now := time.Now()
	frames(&c.rbuf, func(head []byte) {
		r := &tappedRequest{conn: c.id, key: int16(binary.BigEndian.Uint16(head)), corr: int32(binary.BigEndian.Uint32(head[4:])), read: now}
		c.b.mu.Lock()
		c.b.reqs = append(c.b.reqs, r)
		c.inFlight[r.corr] = r
		c.b.mu.Unlock()
	})
	return n, err
}

// Write notes an answer before it writes it: once written, kproxy can hand
// it to the client, which may look at the tap before a note made after the
// write (a race that a loaded machine lost).
func (c *tapConn) Write(p []byte) (int, error) {
	c.wbuf = append(c.wbuf, p...)
	now := time.Now()
	frames(&c.wbuf, func(head []byte) {
		corr := int32(binary.BigEndian.Uint32(head))
		c.b.mu.Lock()
		if r, ok := c.inFlight[corr]; ok {
			r.answered = now
			delete(c.inFlight, corr)
		}
		c.b.mu.Unlock()
	})
	return c.Conn.Write(p)
}

// snapshot copies what the tap saw.
func (b *brokerTap) snapshot() []tappedRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]tappedRequest, len(b.reqs))
	for i, r := range b.reqs {
		out[i] = *r
	}
	return out
}

// answeredDuringLongPoll counts the requests of key that the broker read
// and answered while a Fetch it had read earlier, on another connection,
// was still unanswered: requests a long poll did not hold up.
func answeredDuringLongPoll(reqs []tappedRequest, key kmsg.Key) int {
	n := 0
	for _, r := range reqs {
		if r.key != int16(key) || r.answered.IsZero() {
			continue
		}
		for _, f := range reqs {
			if f.key == int16(kmsg.Fetch) && f.conn != r.conn && f.read.Before(r.read) && (f.answered.IsZero() || f.answered.After(r.answered)) {
				n++
				break
			}
		}
	}
	return n
}

func waitForTap(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-tick.C:
		}
	}
}

// TestKIP848ConsumerGroup: a kgo consumer group on the KIP-848 protocol
// (ConsumerGroupHeartbeat, the server assigns) consumes through kproxy,
// and at the broker its heartbeats are read and answered while its
// long-poll Fetch is still in flight: the heartbeat does not wait behind it.
func TestKIP848ConsumerGroup(t *testing.T) {
	tap := &brokerTap{}
	env := proxytest.Start(t, proxytest.Options{
		Brokers: 1,
		Kfake: []kfake.Opt{
			kfake.ListenFn(tap.listen),
			kfake.SeedTopics(3, "t848"),
			kfake.BrokerConfigs(map[string]string{"group.consumer.heartbeat.interval.ms": "200"}),
		},
	})
	ctx := ctxTimeout(t, 60*time.Second)
	producer := newClient(t, env.Bootstrap(), kgo.DefaultProduceTopic("t848"))
	const n = 60
	for i := range n {
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "r%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consumer := newClient(t, env.Bootstrap(), kgo.ConsumeTopics("t848"), kgo.ConsumerGroup("g848"),
		kgo.ServerSideBalancer(), kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(2*time.Second))
	seen := consumeExactly(t, ctx, consumer, n)
	for i := range n {
		if !seen[fmt.Sprintf("r%d", i)] {
			t.Fatalf("record r%d missing", i)
		}
	}
	// Nothing more to fetch: every Fetch is now a 2 s long poll.
	polls := pollUntilClosed(ctx, consumer)
	waitForTap(t, ctx, "3 ConsumerGroupHeartbeats answered during a long poll", func() bool {
		return answeredDuringLongPoll(tap.snapshot(), kmsg.ConsumerGroupHeartbeat) >= 3
	})
	consumer.Close()
	<-polls
	for _, r := range tap.snapshot() {
		if r.key == int16(kmsg.JoinGroup) || r.key == int16(kmsg.SyncGroup) {
			t.Fatalf("the consumer used the classic protocol (%s)", kmsg.NameForKey(r.key))
		}
	}
}

// pollUntilClosed polls in the background until the client is closed or
// ctx ends; the channel closes then.
func pollUntilClosed(ctx context.Context, cl *kgo.Client) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil && !cl.PollFetches(ctx).IsClientClosed() {
		}
	}()
	return done
}

// TestHeartbeatNotBehindFetchOnOneSocket: a client that pipelines a long
// poll and a KIP-848 heartbeat on one connection (relaxed ordering) gets
// the heartbeat's answer first: kproxy sent it over the coordination lane,
// which the broker answered while the Fetch waited on the fetch lane.
func TestHeartbeatNotBehindFetchOnOneSocket(t *testing.T) {
	tap := &brokerTap{}
	env := proxytest.Start(t, proxytest.Options{
		Brokers: 1,
		Kfake:   []kfake.Opt{kfake.ListenFn(tap.listen), kfake.SeedTopics(1, "idle")},
		Config: func(c *config.Config) {
			c.Routing.ClientRules = []config.ClientRule{{ClientID: "^one-socket$", Ordering: config.OrderingRelaxed}}
		},
	})
	c := dialRaw(t, env.Proxy.BrokerAddrs()[0], "one-socket")
	fetch := rawFetch("idle", 3*time.Second)
	fetchCorr, err := c.Send(fetch)
	if err != nil {
		t.Fatal(err)
	}
	// The heartbeat follows once the broker has the Fetch: a fetch lane
	// still being dialed would let the heartbeat through first anyway.
	waitFor(t, "the broker to read the Fetch", func() bool {
		for _, r := range tap.snapshot() {
			if r.key == int16(kmsg.Fetch) {
				return true
			}
		}
		return false
	})
	hb := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	hb.SetVersion(0)
	hb.Group, hb.MemberEpoch, hb.RebalanceTimeoutMillis = "one-socket", 0, 30000
	hb.SubscribedTopicNames = []string{"idle"}
	hb.ServerAssignor = kmsg.StringPtr("uniform")
	hb.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{} // empty, not null, on a join
	hbCorr, err := c.Send(hb)
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	if first.CorrelationID != hbCorr {
		t.Fatalf("first answer is %d, want the heartbeat's %d (the Fetch is %d)", first.CorrelationID, hbCorr, fetchCorr)
	}
	if code := first.Msg.(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode; code != 0 {
		t.Fatalf("heartbeat error code %d", code)
	}
	if got := answeredDuringLongPoll(tap.snapshot(), kmsg.ConsumerGroupHeartbeat); got != 1 {
		t.Fatalf("%d heartbeats answered upstream during the long poll, want 1", got)
	}
	if second, err := c.Read(); err != nil || second.CorrelationID != fetchCorr {
		t.Fatalf("second answer: %v, %v; want the Fetch's", second.CorrelationID, err)
	}
}

// rawFetch is a Fetch v12 (flexible) of partition 0 from offset 0.
func rawFetch(topic string, wait time.Duration) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.ReplicaID = -1
	req.MaxWaitMillis = int32(wait / time.Millisecond)
	req.MinBytes, req.MaxBytes = 1, 1<<20
	tp := kmsg.NewFetchRequestTopic()
	tp.Topic = topic
	p := kmsg.NewFetchRequestTopicPartition()
	p.PartitionMaxBytes = 1 << 20
	tp.Partitions = append(tp.Partitions, p)
	req.Topics = append(req.Topics, tp)
	return req
}

// TestShareGroup: a KIP-932 share group consumes every record through
// kproxy. At the broker, ShareFetch and ShareAcknowledge of a client
// connection arrive over one upstream connection (they share one
// share-session epoch), which carries nothing else.
func TestShareGroup(t *testing.T) {
	tap := &brokerTap{}
	env := proxytest.Start(t, proxytest.Options{
		Brokers: 1,
		Kfake:   []kfake.Opt{kfake.ListenFn(tap.listen), kfake.SeedTopics(2, "tshare")},
	})
	env.Cluster.SetGroupConfigs("gshare", map[string]string{"share.auto.offset.reset": "earliest"})
	ctx := ctxTimeout(t, 60*time.Second)
	producer := newClient(t, env.Bootstrap(), kgo.DefaultProduceTopic("tshare"))
	const n = 40
	for i := range n {
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "r%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consumer := newClient(t, env.Bootstrap(), kgo.ConsumeTopics("tshare"), kgo.ShareGroup("gshare"), kgo.FetchMaxWait(300*time.Millisecond))
	seen := consumeExactly(t, ctx, consumer, n)
	for i := range n {
		if !seen[fmt.Sprintf("r%d", i)] {
			t.Fatalf("record r%d missing", i)
		}
	}
	consumer.Close() // acknowledges what it holds

	share := map[int]bool{}  // connections that carried share traffic
	others := map[int]bool{} // connections that carried anything else
	acks := 0
	for _, r := range tap.snapshot() {
		switch kmsg.Key(r.key) {
		case kmsg.ShareFetch:
			share[r.conn] = true
		case kmsg.ShareAcknowledge:
			acks++
			share[r.conn] = true
		default:
			others[r.conn] = true
		}
	}
	for _, r := range tap.snapshot() {
		if r.key == int16(kmsg.ShareAcknowledge) {
			fetched := false
			for _, f := range tap.snapshot() {
				fetched = fetched || f.key == int16(kmsg.ShareFetch) && f.conn == r.conn
			}
			if !fetched {
				t.Fatalf("ShareAcknowledge on upstream connection %d, which carried no ShareFetch", r.conn)
			}
		}
	}
	for conn := range share {
		if others[conn] {
			t.Errorf("upstream connection %d carried share-session traffic and other APIs", conn)
		}
	}
	if len(share) == 0 {
		t.Fatal("no ShareFetch reached the broker")
	}
	t.Logf("share traffic over %d upstream connection(s), %d ShareAcknowledge", len(share), acks)
}

// TestShareFetchLongPollNotStalled: a ShareFetch's MaxWaitMillis is the
// request's own timeout. A share consumer long-polling an empty topic for
// longer than limits.upstream_answer_grace keeps its session.
func TestShareFetchLongPollNotStalled(t *testing.T) {
	tap := &brokerTap{}
	env := proxytest.Start(t, proxytest.Options{
		Brokers: 1,
		Kfake:   []kfake.Opt{kfake.ListenFn(tap.listen), kfake.SeedTopics(1, "quiet")},
		Config:  func(c *config.Config) { c.Limits.UpstreamAnswerGrace = 200 * time.Millisecond },
	})
	env.Cluster.SetGroupConfigs("gquiet", map[string]string{"share.auto.offset.reset": "earliest"})
	ctx := ctxTimeout(t, 60*time.Second)
	consumer := newClient(t, env.Bootstrap(), kgo.ConsumeTopics("quiet"), kgo.ShareGroup("gquiet"), kgo.FetchMaxWait(time.Second))
	polls := pollUntilClosed(ctx, consumer)
	const grace = 200 * time.Millisecond
	stalled := func() float64 {
		return testutil.ToFloat64(env.Metrics.SessionCloses.WithLabelValues("upstream_stalled"))
	}
	waitForTap(t, ctx, "two ShareFetch long polls answered after more than 3x the grace", func() bool {
		if stalled() > 0 {
			return true
		}
		long := 0
		for _, r := range tap.snapshot() {
			if r.key == int16(kmsg.ShareFetch) && !r.answered.IsZero() && r.answered.Sub(r.read) > 3*grace {
				long++
			}
		}
		return long >= 2
	})
	if got := stalled(); got != 0 {
		t.Fatalf("%v sessions closed as upstream_stalled during share long polls", got)
	}
	consumer.Close()
	<-polls
}
