package listener_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// TestVersionBridgePipelinedInOrder: a legacy client pipelines, in one
// write to a broker that is not its group's coordinator, offset commits and
// fetches that kproxy sends on to the coordinator (looking it up first),
// bridged produces and fetches to this broker, and a Metadata v0 between
// them. The answers come back in the order asked, and each offset fetch
// sees the commit sent before it, as on one connection to a broker.
func TestVersionBridgePipelinedInOrder(t *testing.T) {
	env := proxytest.Start(t, proxytest.Options{Brokers: 3, Kfake: []kfake.Opt{kfake.SeedTopics(3, "t")}})
	boot, err := rawclient.Dial(env.Bootstrap())
	if err != nil {
		t.Fatal(err)
	}
	defer boot.Close()
	const group = "pipelined-zookeeper-era"
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey = group
	coordinator := roundTrip[*kmsg.FindCoordinatorResponse](t, boot, fc).NodeID
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(0)
	meta.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("t")}}
	m := roundTrip[*kmsg.MetadataResponse](t, boot, meta)
	// A partition led by a broker other than the coordinator, so the
	// session's one connection carries both bridged paths.
	var broker *kmsg.MetadataResponseBroker
	partition := int32(-1)
	for _, p := range m.Topics[0].Partitions {
		if p.Leader == coordinator {
			continue
		}
		for i := range m.Brokers {
			if m.Brokers[i].NodeID == p.Leader {
				broker, partition = &m.Brokers[i], p.Partition
			}
		}
	}
	if broker == nil {
		t.Skipf("every partition of t is led by the coordinator %d", coordinator)
	}
	conn, err := rawclient.Dial(net.JoinHostPort(broker.Host, strconv.Itoa(int(broker.Port))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	commit := func(offset int64) kmsg.Request {
		r := kmsg.NewPtrOffsetCommitRequest()
		r.SetVersion(0)
		r.Group = group
		p := kmsg.NewOffsetCommitRequestTopicPartition()
		p.Partition, p.Offset = partition, offset
		r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{p}}}
		return r
	}
	offsetFetch := func() kmsg.Request {
		r := kmsg.NewPtrOffsetFetchRequest()
		r.SetVersion(0)
		r.Group = group
		r.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{partition}}}
		return r
	}
	fetch := rawclient.FetchRequest("t", partition, 0)
	fetch.SetVersion(3)
	fetch.MaxBytes = 1 << 20
	reqs := []kmsg.Request{
		commit(7),
		offsetFetch(),
		rawclient.LegacyProduceRequest("t", partition, rawclient.MessageV1(nil, 0, 0, []byte("first"))),
		meta,
		commit(9),
		offsetFetch(),
		fetch,
		rawclient.LegacyProduceRequest("t", partition, rawclient.MessageV1(nil, 0, 0, []byte("second"))),
		offsetFetch(),
	}
	corrs, err := conn.SendAll(reqs...)
	if err != nil {
		t.Fatal(err)
	}
	wantOffsets := []int64{7, 9, 9}
	for i, req := range reqs {
		resp, err := conn.Read()
		if err != nil {
			t.Fatalf("answer %d (%s v%d): %v", i, kmsg.NameForKey(req.Key()), req.GetVersion(), err)
		}
		if resp.CorrelationID != corrs[i] {
			t.Fatalf("answer %d has correlation id %d, want %d (%s v%d): out of order", i, resp.CorrelationID, corrs[i], kmsg.NameForKey(req.Key()), req.GetVersion())
		}
		switch a := resp.Msg.(type) {
		case *kmsg.OffsetCommitResponse:
			if code := a.Topics[0].Partitions[0].ErrorCode; code != 0 {
				t.Errorf("answer %d: OffsetCommit v0 error %d", i, code)
			}
		case *kmsg.OffsetFetchResponse:
			p := a.Topics[0].Partitions[0]
			if p.ErrorCode != 0 || p.Offset != wantOffsets[0] {
				t.Errorf("answer %d: OffsetFetch v0 offset %d error %d, want %d: it did not see the commit asked before it", i, p.Offset, p.ErrorCode, wantOffsets[0])
			}
			wantOffsets = wantOffsets[1:]
		case *kmsg.ProduceResponse:
			if code := a.Topics[0].Partitions[0].ErrorCode; code != 0 {
				t.Errorf("answer %d: Produce v2 error %d", i, code)
			}
		case *kmsg.FetchResponse:
			p := a.Topics[0].Partitions[0]
			if p.ErrorCode != 0 || len(p.RecordBatches) == 0 || p.RecordBatches[16] != 1 {
				t.Errorf("answer %d: Fetch v3 error %d, %d bytes of records: want the first produce's message, of format v1", i, p.ErrorCode, len(p.RecordBatches))
			}
		case *kmsg.MetadataResponse:
			if len(a.Brokers) != 3 {
				t.Errorf("answer %d: Metadata v0 lists %d brokers, want 3", i, len(a.Brokers))
			}
		}
	}
}
