package bridge

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kfakeBroker is one kfake broker, a connection to it, and what it
// advertised: kfake refuses Produce below v3, Fetch below v4 and
// OffsetForLeaderEpoch below v3, so it enforces 4.0's floors.
type kfakeBroker struct {
	conn   net.Conn
	broker *Broker
}

func newKfakeBroker(t *testing.T) *kfakeBroker {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "seeded"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	conn, err := net.Dial("tcp", cluster.ListenAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// A bound on every exchange, so a broker that never answers fails the
	// test instead of hanging it.
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	k := &kfakeBroker{conn: conn}
	versions := kmsg.NewPtrApiVersionsRequest()
	frame := append(binary.BigEndian.AppendUint32(nil, 0), requestBytes(versions, 0, &testClientID)...)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	resp := decodeResponseFrame(t, k.exchange(t, frame), int16(kmsg.ApiVersions), 0).(*kmsg.ApiVersionsResponse)
	k.broker = NewBroker(resp.ApiKeys)
	return k
}

func (k *kfakeBroker) exchange(t *testing.T, frame []byte) []byte {
	t.Helper()
	if _, err := k.conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	answer := make([]byte, 4)
	if _, err := io.ReadFull(k.conn, answer); err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	answer = append(answer, make([]byte, binary.BigEndian.Uint32(answer))...)
	if _, err := io.ReadFull(k.conn, answer[4:]); err != nil {
		t.Fatal(err)
	}
	return answer
}

// bridged sends req at version the way kproxy would: Target, Up, the
// broker, Down. It fails the test unless the request needed the bridge.
func (k *kfakeBroker) bridged(t *testing.T, req kmsg.Request, version int16) kmsg.Response {
	t.Helper()
	key := req.Key()
	to, bridged, ok := k.broker.Target(key, version)
	if !bridged || !ok {
		t.Fatalf("%s v%d: Target v%d bridged %v ok %v", kmsg.NameForKey(key), version, to, bridged, ok)
	}
	frame, x, err := Up(requestBytes(req, version, &testClientID), key, version, to, testMaxOut)
	if err != nil {
		t.Fatalf("%s v%d Up: %v", kmsg.NameForKey(key), version, err)
	}
	down, err := x.Down(k.exchange(t, frame), testMaxOut)
	if err != nil {
		t.Fatalf("%s v%d Down: %v", kmsg.NameForKey(key), version, err)
	}
	return decodeResponseFrame(t, down, key, version)
}

// Old admin and group requests through the bridge to kfake, each answered
// in the client's version: a topic created by CreateTopics v0, its end
// offset by ListOffsets v0, an
// offset committed by OffsetCommit v0 and read back by OffsetFetch v0 from
// Kafka's storage, OffsetForLeaderEpoch v0 (kfake's lowest is v3),
// DescribeConfigs v0 and DeleteTopics v0.
func TestBridgeToKfake(t *testing.T) {
	k := newKfakeBroker(t)

	create := kmsg.NewPtrCreateTopicsRequest()
	create.TimeoutMillis = 5000
	create.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "bridged", NumPartitions: 2, ReplicationFactor: 1}}
	if ts := k.bridged(t, create, 0).(*kmsg.CreateTopicsResponse).Topics; len(ts) != 1 || ts[0].Topic != "bridged" || ts[0].ErrorCode != 0 {
		t.Fatalf("CreateTopics v0: %+v", ts)
	}

	list := kmsg.NewPtrListOffsetsRequest()
	list.ReplicaID = -1
	list.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "bridged", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Partition: 1, Timestamp: -1, MaxNumOffsets: 1}}}}
	if p := k.bridged(t, list, 0).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.OldStyleOffsets) != 1 || p.OldStyleOffsets[0] != 0 {
		t.Fatalf("ListOffsets v0: %+v, want offsets [0]", p)
	}

	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group = "legacy-group"
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "bridged", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 5, Metadata: kmsg.StringPtr("v0")}}}}
	if p := k.bridged(t, commit, 0).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 {
		t.Fatalf("OffsetCommit v0: %+v", p)
	}
	fetchOffsets := kmsg.NewPtrOffsetFetchRequest()
	fetchOffsets.Group = "legacy-group"
	fetchOffsets.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "bridged", Partitions: []int32{0}}}
	if p := k.bridged(t, fetchOffsets, 0).(*kmsg.OffsetFetchResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.Offset != 5 || p.Metadata == nil || *p.Metadata != "v0" {
		t.Fatalf("OffsetFetch v0: %+v, want offset 5 committed by v0", p)
	}

	epochs := kmsg.NewPtrOffsetForLeaderEpochRequest()
	epochs.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "bridged", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{Partition: 0, LeaderEpoch: 0}}}}
	if p := k.bridged(t, epochs, 0).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.EndOffset != 0 {
		t.Fatalf("OffsetForLeaderEpoch v0: %+v", p)
	}

	configs := kmsg.NewPtrDescribeConfigsRequest()
	configs.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "bridged", ConfigNames: []string{"cleanup.policy"}}}
	if rs := k.bridged(t, configs, 0).(*kmsg.DescribeConfigsResponse).Resources; len(rs) != 1 || rs[0].ErrorCode != 0 || len(rs[0].Configs) != 1 || rs[0].Configs[0].Name != "cleanup.policy" {
		t.Fatalf("DescribeConfigs v0: %+v", rs)
	}

	del := kmsg.NewPtrDeleteTopicsRequest()
	del.TimeoutMillis, del.TopicNames = 5000, []string{"bridged"}
	if ts := k.bridged(t, del, 0).(*kmsg.DeleteTopicsResponse).Topics; len(ts) != 1 || *ts[0].Topic != "bridged" || ts[0].ErrorCode != 0 {
		t.Fatalf("DeleteTopics v0: %+v", ts)
	}
}
