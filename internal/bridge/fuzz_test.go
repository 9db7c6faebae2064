package bridge

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzUp feeds Up, Down and UnsupportedVersion garbage: they must refuse it
// with an error, never panic, and never return a frame past maxOut or one
// the client cannot decode.
func FuzzUp(f *testing.F) {
	const maxOut = 1 << 16
	for _, seed := range []struct {
		req      kmsg.Request
		from, to int16
	}{
		{&kmsg.ProduceRequest{Acks: 1, Topics: []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Records: []byte{1, 2, 3}}}}}}, 0, 3},
		{&kmsg.FetchRequest{Topics: []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{{PartitionMaxBytes: 10}}}}}, 2, 4},
		{&kmsg.ListOffsetsRequest{Topics: []kmsg.ListOffsetsRequestTopic{{Topic: "t", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Timestamp: -1, MaxNumOffsets: 1}}}}}, 0, 1},
		{&kmsg.OffsetCommitRequest{Group: "g", Topics: []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Offset: 1}}}}}, 1, 8},
		{&kmsg.OffsetFetchRequest{Group: "g", Topics: []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}}, 0, 7},
		{&kmsg.JoinGroupRequest{Group: "g", Protocols: []kmsg.JoinGroupRequestProtocol{{Name: "range"}}}, 0, 2},
		{&kmsg.CreateTopicsRequest{Topics: []kmsg.CreateTopicsRequestTopic{{Topic: "t"}}}, 1, 5},
		{&kmsg.DeleteTopicsRequest{TopicNames: []string{"t"}}, 0, 6},
		{&kmsg.OffsetForLeaderEpochRequest{Topics: []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{}}}}}, 0, 3},
		{&kmsg.DescribeACLsRequest{}, 0, 1},
		{&kmsg.DeleteACLsRequest{Filters: []kmsg.DeleteACLsRequestFilter{{}}}, 0, 2},
		{&kmsg.DescribeConfigsRequest{Resources: []kmsg.DescribeConfigsRequestResource{{ResourceName: "t"}}}, 0, 4},
		{&kmsg.DescribeLogDirsRequest{}, 0, 3},
	} {
		f.Add(requestBytes(seed.req, seed.from, &testClientID), seed.req.Key(), seed.from, seed.to, []byte{0, 0, 0, 4, 1, 2, 3, 4})
	}
	f.Fuzz(func(t *testing.T, req []byte, key, from, to int16, answer []byte) {
		if frame, err := UnsupportedVersion(req, key, from); err == nil && len(frame) < 8 && frame != nil {
			t.Fatalf("UnsupportedVersion: %d-byte frame", len(frame))
		}
		frame, x, err := UpAlloc(poisoning(), req, key, from, to, maxOut)
		if err != nil {
			return
		}
		if len(frame)-4 > maxOut {
			t.Fatalf("Up: %d bytes past maxOut %d", len(frame)-4, maxOut)
		}
		pieces, err := x.DownAlloc(poisoning(), answer, maxOut)
		if err != nil {
			return
		}
		down := bytes.Join(pieces, nil)
		if len(down)-4 > maxOut {
			t.Fatalf("Down: %d bytes past maxOut %d", len(down)-4, maxOut)
		}
		// What the client is given, it can read: the answer decodes at
		// the client's version (Fetch v0–3 answers are laid out by hand).
		if len(down) < 8 || int(binary.BigEndian.Uint32(down)) != len(down)-4 {
			t.Fatalf("Down: size prefix %x for %d bytes", down[:min(4, len(down))], len(down))
		}
		r := kmsg.ResponseForKey(key)
		r.SetVersion(from)
		body := down[8:]
		if flexibleResponseHeader(r) {
			var ok bool
			if body, ok = skipTags(body); !ok {
				t.Fatal("Down: answer header tags")
			}
		}
		if err := r.ReadFrom(body); err != nil {
			t.Fatalf("Down: the %s v%d answer does not decode: %v", kmsg.NameForKey(key), from, err)
		}
	})
}
