package bridge

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestOffsetCommitUpDown(t *testing.T) {
	for from := int16(0); from <= 1; from++ {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.Generation, req.MemberID = "billing", 12, "member-1"
		topic := kmsg.NewOffsetCommitRequestTopic()
		topic.Topic = "orders"
		p := kmsg.NewOffsetCommitRequestTopicPartition()
		p.Partition, p.Offset, p.Timestamp, p.Metadata = 2, 500, 1700000000000, kmsg.StringPtr("meta")
		topic.Partitions = append(topic.Partitions, p)
		req.Topics = append(req.Topics, topic)

		resp := kmsg.NewPtrOffsetCommitResponse()
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = "orders"
		rp := kmsg.NewOffsetCommitResponseTopicPartition()
		rp.Partition, rp.ErrorCode = 2, codeGroupIDNotFound
		rt.Partitions = append(rt.Partitions, rp)
		resp.Topics = append(resp.Topics, rt)

		apiCase{
			from: from, to: 2, req: req,
			checkUp: func(t *testing.T, up kmsg.Request) {
				r := up.(*kmsg.OffsetCommitRequest)
				wantGen, wantMember := int32(12), "member-1"
				if from == 0 {
					wantGen, wantMember = -1, ""
				}
				if r.Group != "billing" || r.Generation != wantGen || r.MemberID != wantMember || r.RetentionTimeMillis != -1 {
					t.Fatalf("v%d up: group %q generation %d member %q retention %d", from, r.Group, r.Generation, r.MemberID, r.RetentionTimeMillis)
				}
				p := r.Topics[0].Partitions[0]
				if r.Topics[0].Topic != "orders" || p.Partition != 2 || p.Offset != 500 || p.Metadata == nil || *p.Metadata != "meta" {
					t.Fatalf("v%d up: partition %+v", from, p)
				}
			},
			resp: resp,
			checkDown: func(t *testing.T, down kmsg.Response) {
				p := down.(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0]
				// GROUP_ID_NOT_FOUND is ILLEGAL_GENERATION before v9; a v0
				// client (0.8.2) knows neither.
				want := codeIllegalGeneration
				if from == 0 {
					want = codeUnknownServerError
				}
				if p.Partition != 2 || p.ErrorCode != want {
					t.Fatalf("v%d down: partition %d error %d, want 2 %d", from, p.Partition, p.ErrorCode, want)
				}
			},
		}.run(t)
	}
}

func TestOffsetFetchUpDown(t *testing.T) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = "billing"
	topic := kmsg.NewOffsetFetchRequestTopic()
	topic.Topic, topic.Partitions = "orders", []int32{0, 1}
	req.Topics = append(req.Topics, topic)

	resp := kmsg.NewPtrOffsetFetchResponse()
	rt := kmsg.NewOffsetFetchResponseTopic()
	rt.Topic = "orders"
	for _, c := range []struct {
		index  int32
		offset int64
		code   int16
	}{{0, 42, 0}, {1, -1, codeUnstableOffsetCommit}} {
		p := kmsg.NewOffsetFetchResponseTopicPartition()
		p.Partition, p.Offset, p.ErrorCode, p.Metadata = c.index, c.offset, c.code, kmsg.StringPtr("m")
		rt.Partitions = append(rt.Partitions, p)
	}
	resp.Topics = append(resp.Topics, rt)

	apiCase{
		from: 0, to: 1, req: req,
		checkUp: func(t *testing.T, up kmsg.Request) {
			r := up.(*kmsg.OffsetFetchRequest)
			if r.Group != "billing" || len(r.Topics) != 1 || r.Topics[0].Topic != "orders" || len(r.Topics[0].Partitions) != 2 {
				t.Fatalf("up: %+v", r)
			}
		},
		resp: resp,
		checkDown: func(t *testing.T, down kmsg.Response) {
			ps := down.(*kmsg.OffsetFetchResponse).Topics[0].Partitions
			if len(ps) != 2 || ps[0].Offset != 42 || ps[0].ErrorCode != 0 || *ps[0].Metadata != "m" {
				t.Fatalf("down: %+v", ps)
			}
			if ps[1].ErrorCode != codeCoordinatorLoading {
				t.Fatalf("down: UNSTABLE_OFFSET_COMMIT became %d, want COORDINATOR_LOAD_IN_PROGRESS", ps[1].ErrorCode)
			}
		},
	}.run(t)
}

// From v2 on an OffsetFetch answer carries a group error at the top, with no
// partitions; v0 and v1 carry it on each partition asked for.
func TestOffsetFetchGroupErrorReachesPartitions(t *testing.T) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = "billing"
	topic := kmsg.NewOffsetFetchRequestTopic()
	topic.Topic, topic.Partitions = "orders", []int32{5, 6}
	req.Topics = append(req.Topics, topic)
	resp := kmsg.NewPtrOffsetFetchResponse()
	resp.ErrorCode = 16 // NOT_COORDINATOR
	apiCase{
		from: 0, to: 3, req: req,
		checkUp: func(t *testing.T, up kmsg.Request) {},
		resp:    resp,
		checkDown: func(t *testing.T, down kmsg.Response) {
			r := down.(*kmsg.OffsetFetchResponse)
			if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 2 {
				t.Fatalf("down: topics %+v, want both partitions asked", r.Topics)
			}
			for _, p := range r.Topics[0].Partitions {
				if p.ErrorCode != 16 || p.Offset != -1 {
					t.Fatalf("down: partition %d error %d offset %d, want 16 -1", p.Partition, p.ErrorCode, p.Offset)
				}
			}
		},
	}.run(t)
}

func TestJoinGroupUpDown(t *testing.T) {
	for from := int16(0); from <= 1; from++ {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = "billing", 10000, 60000
		req.ProtocolType = "consumer"
		req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{1, 2}}}

		resp := kmsg.NewPtrJoinGroupResponse()
		resp.ThrottleMillis, resp.ErrorCode, resp.Generation = 3, codeFencedInstanceID, 8
		resp.Protocol, resp.LeaderID, resp.MemberID = kmsg.StringPtr("range"), "m-1", "m-2"
		resp.Members = []kmsg.JoinGroupResponseMember{{MemberID: "m-1", ProtocolMetadata: []byte{9}}}

		apiCase{
			from: from, to: 2, req: req,
			checkUp: func(t *testing.T, up kmsg.Request) {
				r := up.(*kmsg.JoinGroupRequest)
				wantRebalance := int32(60000)
				if from == 0 {
					wantRebalance = 10000
				}
				if r.Group != "billing" || r.SessionTimeoutMillis != 10000 || r.RebalanceTimeoutMillis != wantRebalance ||
					r.ProtocolType != "consumer" || len(r.Protocols) != 1 || r.Protocols[0].Name != "range" {
					t.Fatalf("v%d up: %+v (rebalance want %d)", from, r, wantRebalance)
				}
			},
			resp: resp,
			checkDown: func(t *testing.T, down kmsg.Response) {
				r := down.(*kmsg.JoinGroupResponse)
				if r.ErrorCode != codeUnknownMemberID || r.Generation != 8 || *r.Protocol != "range" ||
					r.LeaderID != "m-1" || r.MemberID != "m-2" || len(r.Members) != 1 || r.ThrottleMillis != 0 {
					t.Fatalf("v%d down: %+v", from, r)
				}
			},
		}.run(t)
	}
}
