package bridge

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestErrorCodeForOldClients(t *testing.T) {
	for _, c := range []struct {
		key        kmsg.Key
		from       int16
		code, want int16
	}{
		{kmsg.Produce, 0, 0, 0},
		{kmsg.Produce, 0, 19, 19},                               // NOT_ENOUGH_REPLICAS, 0.8.2
		{kmsg.Produce, 0, 29, codeUnknownServerError},           // TOPIC_AUTHORIZATION_FAILED came with 0.9
		{kmsg.Produce, 1, 29, 29},                               // ... which v1's release knew
		{kmsg.Produce, 2, codeKafkaStorageError, codeNotLeader}, // KIP-112
		{kmsg.Fetch, 3, codeFencedLeaderEpoch, codeNotLeader},   //
		{kmsg.ListOffsets, 0, codeOffsetNotAvailable, codeLeaderNotAvailable},
		{kmsg.OffsetCommit, 1, codeStaleMemberEpoch, codeIllegalGeneration},
		{kmsg.OffsetCommit, 1, codeFencedInstanceID, codeUnknownMemberID},
		{kmsg.OffsetCommit, 0, codeIllegalGeneration, codeUnknownServerError}, // v0 has no generation
		{kmsg.OffsetFetch, 0, codeUnstableOffsetCommit, codeCoordinatorLoading},
		{kmsg.OffsetFetch, 0, codeUnknownTopicID, codeUnknownTopicPartition},
		{kmsg.JoinGroup, 0, 79, codeUnknownServerError}, // MEMBER_ID_REQUIRED has no older meaning
		{kmsg.JoinGroup, 0, 27, 27},                     // REBALANCE_IN_PROGRESS, 0.9
		{kmsg.DeleteTopics, 0, codeTopicDeletionDisabled, codeInvalidRequest},
		{kmsg.CreateTopics, 1, codePolicyViolation, codePolicyViolation},
		{kmsg.DescribeLogDirs, 0, 57, 57},
		{kmsg.OffsetForLeaderEpoch, 1, 72, 72},
		{kmsg.OffsetForLeaderEpoch, 1, codeUnknownLeaderEpoch, codeNotLeader},
		{kmsg.Metadata, 0, 100, 100}, // not a bridged key: untouched
	} {
		x := &Exchange{Key: int16(c.key), From: c.from}
		if got := x.code(c.code); got != c.want {
			t.Errorf("%s v%d: code %d became %d, want %d", kmsg.NameForKey(int16(c.key)), c.from, c.code, got, c.want)
		}
	}
}

// A null client id stays null, and a header that names another key or
// version than the caller's is refused, not translated.
func TestUpHeader(t *testing.T) {
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TopicNames = []string{"a"}
	frame, _, err := Up(requestBytes(req, 0, nil), int16(kmsg.DeleteTopics), 0, 4, testMaxOut)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	up := decodeRequestFrame(t, frame, int16(kmsg.DeleteTopics), 4, nil).(*kmsg.DeleteTopicsRequest)
	if !up.IsFlexible() || len(up.TopicNames) != 1 {
		t.Fatalf("v4 request: flexible %v names %v", up.IsFlexible(), up.TopicNames)
	}
	if _, _, err := Up(requestBytes(req, 0, nil), int16(kmsg.DeleteTopics), 1, 4, testMaxOut); !errors.Is(err, ErrMalformed) {
		t.Fatalf("header v0 called v1: err %v, want ErrMalformed", err)
	}
	if _, _, err := Up(requestBytes(req, 0, nil), int16(kmsg.CreateTopics), 0, 4, testMaxOut); !errors.Is(err, ErrMalformed) {
		t.Fatalf("DeleteTopics header called CreateTopics: err %v, want ErrMalformed", err)
	}
}

func TestUpRefuses(t *testing.T) {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "t", NumPartitions: 1, ReplicationFactor: 1}}
	raw := requestBytes(req, 0, &testClientID)
	for _, c := range []struct {
		name          string
		key, from, to int16
		req           []byte
		maxOut        int
		want          error
	}{
		{"not translated", int16(kmsg.Metadata), 0, 1, raw, testMaxOut, ErrNotBridged},
		{"down not up", int16(kmsg.CreateTopics), 2, 0, raw, testMaxOut, ErrNotBridged},
		{"past kmsg", int16(kmsg.CreateTopics), 0, 99, raw, testMaxOut, ErrNotBridged},
		{"past topic names", int16(kmsg.Produce), 0, 13, raw, testMaxOut, ErrNotBridged},
		{"input over maxOut", int16(kmsg.CreateTopics), 0, 2, raw, len(raw) - 1, ErrTooLarge},
		{"output over maxOut", int16(kmsg.CreateTopics), 0, 2, raw, len(raw), ErrTooLarge}, // v2 adds ValidateOnly
		{"truncated body", int16(kmsg.CreateTopics), 0, 2, raw[:len(raw)-3], testMaxOut, ErrMalformed},
		{"truncated header", int16(kmsg.CreateTopics), 0, 2, raw[:9], testMaxOut, ErrMalformed},
	} {
		if _, _, err := Up(c.req, c.key, c.from, c.to, c.maxOut); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

func TestDownRefuses(t *testing.T) {
	x := &Exchange{Key: int16(kmsg.CreateTopics), From: 0, To: 5}
	resp := kmsg.NewPtrCreateTopicsResponse()
	resp.Topics = []kmsg.CreateTopicsResponseTopic{{Topic: "t"}}
	frame := responseFrame(resp, 5)
	if _, err := x.Down(frame, testMaxOut); err != nil {
		t.Fatalf("Down of a good answer: %v", err)
	}
	bad := append([]byte(nil), frame...)
	binary.BigEndian.PutUint32(bad, uint32(len(bad))) // size one too many
	for _, c := range []struct {
		name   string
		frame  []byte
		maxOut int
		want   error
	}{
		{"size prefix", bad, testMaxOut, ErrMalformed},
		{"short", frame[:7], testMaxOut, ErrMalformed},
		{"over maxOut", frame, len(frame) - 5, ErrTooLarge},
	} {
		if _, err := x.Down(c.frame, c.maxOut); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

func TestUnsupportedVersion(t *testing.T) {
	produce := kmsg.NewPtrProduceRequest()
	produce.Acks = 1
	produce.Topics = []kmsg.ProduceRequestTopic{{Topic: "orders", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0}, {Partition: 3}}}}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Topics = []kmsg.FetchRequestTopic{{Topic: "events", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 1}}}}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group = "g"
	createTopics := kmsg.NewPtrCreateTopicsRequest()
	createTopics.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "a"}, {Topic: "b"}}
	handshake := kmsg.NewPtrSASLHandshakeRequest() // not translated: its own error code only
	handshake.Mechanism = "PLAIN"

	for _, c := range []struct {
		req     kmsg.Request
		version int16
		codes   func(kmsg.Response) []int16 // every error code the client reads
		want    int
	}{
		{produce, 0, func(r kmsg.Response) (codes []int16) {
			for _, p := range r.(*kmsg.ProduceResponse).Topics[0].Partitions {
				codes = append(codes, p.ErrorCode)
			}
			return codes
		}, 2},
		{fetch, 3, func(r kmsg.Response) (codes []int16) {
			for _, p := range r.(*kmsg.FetchResponse).Topics[0].Partitions {
				codes = append(codes, p.ErrorCode)
			}
			return codes
		}, 1},
		{join, 0, func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.JoinGroupResponse).ErrorCode} }, 1},
		{createTopics, 5, func(r kmsg.Response) (codes []int16) {
			for _, t := range r.(*kmsg.CreateTopicsResponse).Topics {
				codes = append(codes, t.ErrorCode)
			}
			return codes
		}, 2},
		{handshake, 0, func(r kmsg.Response) []int16 { return []int16{r.(*kmsg.SASLHandshakeResponse).ErrorCode} }, 1},
	} {
		key := c.req.Key()
		name := kmsg.NameForKey(key)
		frame, err := UnsupportedVersion(requestBytes(c.req, c.version, &testClientID), key, c.version)
		if err != nil {
			t.Fatalf("%s v%d: %v", name, c.version, err)
		}
		codes := c.codes(decodeResponseFrame(t, frame, key, c.version))
		if len(codes) != c.want {
			t.Fatalf("%s v%d: answer lists %d entries, want %d", name, c.version, len(codes), c.want)
		}
		for _, code := range codes {
			if code != codeUnsupportedVersion {
				t.Errorf("%s v%d: error code %d, want 35", name, c.version, code)
			}
		}
	}

	produce.Acks = 0
	if frame, err := UnsupportedVersion(requestBytes(produce, 1, nil), 0, 1); frame != nil || err != nil {
		t.Fatalf("Produce acks=0: frame of %d bytes, err %v; want no answer", len(frame), err)
	}
}
