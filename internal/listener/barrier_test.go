package listener_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// barrierRounds: each round runs on a fresh client connection, so every
// round races a warm lane against one that is still being dialed.
const barrierRounds = 20

// roundTrip sends req alone and returns its answer.
func roundTrip[R kmsg.Response](t *testing.T, c *rawclient.Conn, req kmsg.Request) R {
	t.Helper()
	if _, err := c.Send(req); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.(R)
}

// pipelined sends every request in one write before reading any answer,
// as a single-socket client does, and returns the answers in request order.
func pipelined(t *testing.T, c *rawclient.Conn, reqs ...kmsg.Request) []kmsg.Response {
	t.Helper()
	if _, err := c.SendAll(reqs...); err != nil {
		t.Fatal(err)
	}
	out := make([]kmsg.Response, len(reqs))
	for i := range reqs {
		resp, err := c.Read()
		if err != nil {
			t.Fatalf("answer %d of %d: %v", i+1, len(reqs), err)
		}
		out[i] = resp.Msg
	}
	return out
}

func joinRequest(group, member string) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.SetVersion(5)
	req.Group, req.MemberID, req.ProtocolType = group, member, "consumer"
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 30000, 30000
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name, p.Metadata = "range", []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0}
	req.Protocols = append(req.Protocols, p)
	return req
}

func syncRequest(group, member string, generation int32) *kmsg.SyncGroupRequest {
	req := kmsg.NewPtrSyncGroupRequest()
	req.SetVersion(3)
	req.Group, req.MemberID, req.Generation = group, member, generation
	a := kmsg.NewSyncGroupRequestGroupAssignment()
	a.MemberID, a.MemberAssignment = member, []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0}
	req.GroupAssignment = append(req.GroupAssignment, a)
	return req
}

func commitRequest(group, member string, generation int32, topic string, offset int64) *kmsg.OffsetCommitRequest {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.SetVersion(7)
	req.Group, req.MemberID, req.Generation = group, member, generation
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = 0, offset, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// joinAndSync makes member the group's only member and leader; it returns
// the member id and the generation.
func joinAndSync(t *testing.T, c *rawclient.Conn, group, member string) (string, int32) {
	t.Helper()
	join := roundTrip[*kmsg.JoinGroupResponse](t, c, joinRequest(group, member))
	if join.ErrorCode == kerr.MemberIDRequired.Code {
		join = roundTrip[*kmsg.JoinGroupResponse](t, c, joinRequest(group, join.MemberID))
	}
	if err := kerr.ErrorForCode(join.ErrorCode); err != nil {
		t.Fatalf("JoinGroup: %v", err)
	}
	sync := roundTrip[*kmsg.SyncGroupResponse](t, c, syncRequest(group, join.MemberID, join.Generation))
	if err := kerr.ErrorForCode(sync.ErrorCode); err != nil {
		t.Fatalf("SyncGroup: %v", err)
	}
	return join.MemberID, join.Generation
}

// commitThenRejoin pipelines, on a fresh connection each round, an
// OffsetCommit for the current generation and then the leader's JoinGroup,
// which starts the next generation. On one socket the broker commits
// first; it returns how many commits failed.
func commitThenRejoin(t *testing.T, addr, group, topic string) (failed int) {
	t.Helper()
	member, gen := joinAndSync(t, dialRaw(t, addr, "barrier-setup"), group, "")
	for round := range barrierRounds {
		c := dialRaw(t, addr, "barrier-client")
		answers := pipelined(t, c, commitRequest(group, member, gen, topic, int64(round)), joinRequest(group, member))
		commit, join := answers[0].(*kmsg.OffsetCommitResponse), answers[1].(*kmsg.JoinGroupResponse)
		if err := kerr.ErrorForCode(commit.Topics[0].Partitions[0].ErrorCode); err != nil {
			failed++
			t.Logf("round %d: commit for generation %d: %v", round, gen, err)
		}
		if err := kerr.ErrorForCode(join.ErrorCode); err != nil {
			t.Fatalf("round %d: JoinGroup: %v", round, err)
		}
		sync := roundTrip[*kmsg.SyncGroupResponse](t, c, syncRequest(group, member, join.Generation))
		if err := kerr.ErrorForCode(sync.ErrorCode); err != nil {
			t.Fatalf("round %d: SyncGroup: %v", round, err)
		}
		gen = join.Generation
		c.Close()
	}
	return failed
}

// TestBarrierCommitBeforeRejoin: an OffsetCommit pipelined before a
// JoinGroup on one connection is processed first, through kproxy as
// directly, also on fresh sessions whose lanes are still being dialed, and
// with upstream SASL making every dial slower.
func TestBarrierCommitBeforeRejoin(t *testing.T) {
	const topic, group = "t", "barrier-group"
	for _, tc := range []struct {
		name string
		opts proxytest.Options
	}{
		{"plaintext", proxytest.Options{Kfake: []kfake.Opt{kfake.SeedTopics(1, topic)}}},
		{"upstream_sasl", proxytest.Options{
			Kfake: []kfake.Opt{kfake.SeedTopics(1, topic), kfake.EnableSASL(), kfake.Superuser(config.SASLScram512, "proxy", "proxy-secret")},
			Config: func(c *config.Config) {
				c.Upstream.SASL = config.UpstreamSASL{Mechanism: config.SASLScram512, Username: "proxy", Password: "proxy-secret"}
			},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := proxytest.Start(t, tc.opts)
			addr := env.Proxy.BrokerAddrs()[env.Cluster.CoordinatorFor(group)]
			if failed := commitThenRejoin(t, addr, group, topic); failed != 0 {
				t.Errorf("%d of %d commits pipelined before a rejoin failed through kproxy; on one socket to the broker none do", failed, barrierRounds)
			}
			held := testutil.ToFloat64(env.Metrics.OrderingBarriers.WithLabelValues("OffsetCommit", "JoinGroup"))
			t.Logf("JoinGroup held behind its OffsetCommit %v times in %d rounds", held, barrierRounds)
			if held == 0 {
				t.Error("kproxy_ordering_barriers_total{from=OffsetCommit,to=JoinGroup} stayed 0: the rejoin never waited, so the order above was luck")
			}
		})
	}
}

// TestBarrierDirectBaseline runs the same rounds straight at the broker:
// the test's own expectation, that a broker commits first, holds.
func TestBarrierDirectBaseline(t *testing.T) {
	const topic, group = "t", "barrier-group"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[cluster.CoordinatorFor(group)]
	if failed := commitThenRejoin(t, addr, group, topic); failed != 0 {
		t.Fatalf("%d of %d commits failed directly at the broker", failed, barrierRounds)
	}
}

// TestBarrierProduceBeforeEndTxn: a transactional Produce pipelined before
// the EndTxn that commits it is part of the transaction, through kproxy as
// directly. One broker, so that the partition leader is the transaction
// coordinator and both requests share one client connection.
func TestBarrierProduceBeforeEndTxn(t *testing.T) {
	const topic, txnID = "t", "barrier-txn"
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, topic)}})
	addr := env.Proxy.BrokerAddrs()[0]

	setup := dialRaw(t, addr, "barrier-txn")
	initReq := kmsg.NewPtrInitProducerIDRequest()
	initReq.SetVersion(3)
	initReq.TransactionalID = kmsg.StringPtr(txnID)
	initReq.TransactionTimeoutMillis = 60000
	init := roundTrip[*kmsg.InitProducerIDResponse](t, setup, initReq)
	if err := kerr.ErrorForCode(init.ErrorCode); err != nil {
		t.Fatalf("InitProducerID: %v", err)
	}
	pid, epoch := init.ProducerID, init.ProducerEpoch

	failed := 0
	for round := range barrierRounds {
		c := dialRaw(t, addr, "barrier-txn")
		add := kmsg.NewPtrAddPartitionsToTxnRequest()
		add.SetVersion(3)
		add.TransactionalID, add.ProducerID, add.ProducerEpoch = txnID, pid, epoch
		at := kmsg.NewAddPartitionsToTxnRequestTopic()
		at.Topic, at.Partitions = topic, []int32{0}
		add.Topics = append(add.Topics, at)
		added := roundTrip[*kmsg.AddPartitionsToTxnResponse](t, c, add)
		if err := kerr.ErrorForCode(added.Topics[0].Partitions[0].ErrorCode); err != nil {
			t.Fatalf("round %d: AddPartitionsToTxn: %v", round, err)
		}

		produce := rawclient.ProduceRequest(topic, 0, -1, []byte("in-txn"))
		produce.TransactionID = kmsg.StringPtr(txnID)
		produce.Topics[0].Partitions[0].Records = rawclient.TxnRecordBatch([]byte("in-txn"), pid, epoch, int32(round))
		end := kmsg.NewPtrEndTxnRequest()
		end.SetVersion(3)
		end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = txnID, pid, epoch, true
		answers := pipelined(t, c, produce, end)
		pe := answers[0].(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
		ee := answers[1].(*kmsg.EndTxnResponse).ErrorCode
		if pe != 0 || ee != 0 {
			failed++
			t.Logf("round %d: produce: %v, end: %v", round, kerr.ErrorForCode(pe), kerr.ErrorForCode(ee))
		}
		c.Close()
	}
	if failed != 0 {
		t.Errorf("%d of %d transactions with a Produce pipelined before their EndTxn failed", failed, barrierRounds)
	}
	// Every committed record is below the last stable offset.
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.SetVersion(4)
	lo.ReplicaID, lo.IsolationLevel = -1, 1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Partition, lp.Timestamp, lp.CurrentLeaderEpoch = 0, -1, -1
	lt.Partitions = append(lt.Partitions, lp)
	lo.Topics = append(lo.Topics, lt)
	stable := roundTrip[*kmsg.ListOffsetsResponse](t, setup, lo).Topics[0].Partitions[0].Offset
	if stable < int64(barrierRounds) {
		t.Errorf("last stable offset %d after %d committed transactions of one record each", stable, barrierRounds)
	}
	if held := testutil.ToFloat64(env.Metrics.OrderingBarriers.WithLabelValues("Produce", "EndTxn")); held == 0 {
		t.Error("kproxy_ordering_barriers_total{from=Produce,to=EndTxn} stayed 0: the EndTxn never waited")
	}
}
