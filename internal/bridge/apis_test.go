package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// apiCase is one bridged exchange: a request built at from goes Up to to,
// where a broker would decode it; the broker's answer built at to comes
// Down to from, where the client decodes it.
type apiCase struct {
	name      string
	from, to  int16
	req       kmsg.Request
	checkUp   func(t *testing.T, up kmsg.Request)
	resp      kmsg.Response
	checkDown func(t *testing.T, down kmsg.Response)
}

func (c apiCase) run(t *testing.T) {
	key := c.req.Key()
	frame, x, err := Up(requestBytes(c.req, c.from, &testClientID), key, c.from, c.to, testMaxOut)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	if x.Key != key || x.From != c.from || x.To != c.to {
		t.Fatalf("exchange %d v%d→v%d, want %d v%d→v%d", x.Key, x.From, x.To, key, c.from, c.to)
	}
	c.checkUp(t, decodeRequestFrame(t, frame, key, c.to, &testClientID))
	down, err := x.Down(responseFrame(c.resp, c.to), testMaxOut)
	if err != nil {
		t.Fatalf("Down: %v", err)
	}
	c.checkDown(t, decodeResponseFrame(t, down, key, c.from))
}

func TestProduceUpDown(t *testing.T) {
	sets := [][]byte{
		legacySet(t, legacySetSpec{magic: 0}, []testRecord{{value: []byte("partition 0")}}),
		legacySet(t, legacySetSpec{magic: 1}, []testRecord{{timestamp: 1700000000000, value: []byte("partition 7")}}),
	}
	for from := int16(0); from <= 2; from++ {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 1500
		topic := kmsg.NewProduceRequestTopic()
		topic.Topic = "orders"
		for i, index := range []int32{0, 7} {
			p := kmsg.NewProduceRequestTopicPartition()
			p.Partition, p.Records = index, sets[i]
			topic.Partitions = append(topic.Partitions, p)
		}
		req.Topics = append(req.Topics, topic)

		resp := kmsg.NewPtrProduceResponse()
		resp.ThrottleMillis = 25
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = "orders"
		for _, c := range []struct {
			index int32
			code  int16
		}{{0, 0}, {7, codeKafkaStorageError}} {
			p := kmsg.NewProduceResponseTopicPartition()
			p.Partition, p.ErrorCode, p.BaseOffset, p.LogAppendTime = c.index, c.code, 4200, 1700000000000
			rt.Partitions = append(rt.Partitions, p)
		}
		resp.Topics = append(resp.Topics, rt)

		apiCase{
			from: from, to: 3, req: req,
			checkUp: func(t *testing.T, up kmsg.Request) {
				r := up.(*kmsg.ProduceRequest)
				if r.Acks != -1 || r.TimeoutMillis != 1500 || r.TransactionID != nil {
					t.Fatalf("v%d up: acks %d timeout %d txn %v", from, r.Acks, r.TimeoutMillis, r.TransactionID)
				}
				if len(r.Topics) != 1 || r.Topics[0].Topic != "orders" || len(r.Topics[0].Partitions) != 2 {
					t.Fatalf("v%d up: topics %+v", from, r.Topics)
				}
				for i, p := range r.Topics[0].Partitions {
					want, _ := UpMessageSet(sets[i], testMaxOut)
					if !bytes.Equal(p.Records, want) {
						t.Fatalf("v%d up: partition %d records are not UpMessageSet's output", from, p.Partition)
					}
				}
			},
			resp: resp,
			checkDown: func(t *testing.T, down kmsg.Response) {
				r := down.(*kmsg.ProduceResponse)
				ps := r.Topics[0].Partitions
				if r.Topics[0].Topic != "orders" || len(ps) != 2 || ps[0].BaseOffset != 4200 || ps[1].Partition != 7 {
					t.Fatalf("v%d down: %+v", from, r.Topics)
				}
				if ps[0].ErrorCode != 0 || ps[1].ErrorCode != codeNotLeader {
					t.Fatalf("v%d down: error codes %d, %d; want 0, NOT_LEADER (KAFKA_STORAGE_ERROR mapped)", from, ps[0].ErrorCode, ps[1].ErrorCode)
				}
				wantThrottle, wantAppend := int32(0), int64(-1)
				if from >= 1 {
					wantThrottle = 25
				}
				if from >= 2 {
					wantAppend = 1700000000000
				}
				if r.ThrottleMillis != wantThrottle || ps[0].LogAppendTime != wantAppend {
					t.Fatalf("v%d down: throttle %d append time %d, want %d %d", from, r.ThrottleMillis, ps[0].LogAppendTime, wantThrottle, wantAppend)
				}
			},
		}.run(t)
	}
}

// TestFetchUpDown runs uncompressed partitions, which convert in parallel,
// and gzip ones, which convert one after the other.
func TestFetchUpDown(t *testing.T) {
	for _, codec := range []compression{compressionNone, compressionGzip} {
		testFetchUpDown(t, codec)
	}
}

func testFetchUpDown(t *testing.T, codec compression) {
	for from := int16(0); from <= 3; from++ {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxWaitMillis, req.MinBytes = -1, 500, 1
		if from == 3 {
			req.MaxBytes = 3000
		}
		topic := kmsg.NewFetchRequestTopic()
		topic.Topic = "events"
		for _, c := range []struct {
			index    int32
			offset   int64
			maxBytes int32
		}{{0, 10, 1024}, {1, 20, 4096}} {
			p := kmsg.NewFetchRequestTopicPartition()
			p.Partition, p.FetchOffset, p.PartitionMaxBytes = c.index, c.offset, c.maxBytes
			topic.Partitions = append(topic.Partitions, p)
		}
		req.Topics = append(req.Topics, topic)

		batches := [][]byte{
			recordBatch(t, batchSpec{codec: codec, baseOffset: 10}, testRecords(3)),
			recordBatch(t, batchSpec{codec: codec, baseOffset: 20}, testRecords(2)),
		}
		resp := kmsg.NewPtrFetchResponse()
		resp.ThrottleMillis = 9
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = "events"
		for i, code := range []int16{0, codeOffsetNotAvailable} {
			p := kmsg.NewFetchResponseTopicPartition()
			p.Partition, p.ErrorCode, p.HighWatermark, p.LastStableOffset = int32(i), code, 99, 98
			p.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{{ProducerID: 5, FirstOffset: 50}}
			p.RecordBatches = batches[i]
			rt.Partitions = append(rt.Partitions, p)
		}
		resp.Topics = append(resp.Topics, rt)

		apiCase{
			from: from, to: 4, req: req,
			checkUp: func(t *testing.T, up kmsg.Request) {
				r := up.(*kmsg.FetchRequest)
				wantMax := int32(1024 + 4096)
				if from == 3 {
					wantMax = 3000
				}
				if r.MaxBytes != wantMax || r.IsolationLevel != 0 || r.MaxWaitMillis != 500 || r.MinBytes != 1 || r.ReplicaID != -1 {
					t.Fatalf("v%d up: max bytes %d (want %d) isolation %d wait %d min %d replica %d", from, r.MaxBytes, wantMax, r.IsolationLevel, r.MaxWaitMillis, r.MinBytes, r.ReplicaID)
				}
				ps := r.Topics[0].Partitions
				if r.Topics[0].Topic != "events" || len(ps) != 2 || ps[1].FetchOffset != 20 || ps[1].PartitionMaxBytes != 4096 {
					t.Fatalf("v%d up: topics %+v", from, r.Topics)
				}
			},
			resp: resp,
			checkDown: func(t *testing.T, down kmsg.Response) {
				r := down.(*kmsg.FetchResponse)
				ps := r.Topics[0].Partitions
				if len(ps) != 2 || ps[0].HighWatermark != 99 || ps[0].LastStableOffset != -1 || ps[0].AbortedTransactions != nil {
					t.Fatalf("v%d down: partitions %+v", from, ps)
				}
				magic := int8(1)
				if from < 2 {
					magic = 0
				}
				for i, p := range ps {
					want, err := DownRecords(batches[i], magic, []int32{1024, 4096}[i], testMaxOut)
					if err != nil || len(want) == 0 {
						t.Fatalf("v%d down: DownRecords of partition %d: %d bytes, %v", from, i, len(want), err)
					}
					if !bytes.Equal(p.RecordBatches, want) {
						t.Fatalf("v%d down: partition %d records are not DownRecords' output", from, i)
					}
				}
				if ps[1].ErrorCode != codeLeaderNotAvailable {
					t.Fatalf("v%d down: OFFSET_NOT_AVAILABLE became %d, want LEADER_NOT_AVAILABLE", from, ps[1].ErrorCode)
				}
				if want := map[bool]int32{true: 9, false: 0}[from >= 1]; r.ThrottleMillis != want {
					t.Fatalf("v%d down: throttle %d, want %d", from, r.ThrottleMillis, want)
				}
			},
		}.run(t)
	}
}

// A top-level error (Fetch v7+) has no place in v0–3: the client sees it on
// every partition it asked for.
func TestFetchTopLevelErrorReachesPartitions(t *testing.T) {
	req := kmsg.NewPtrFetchRequest()
	topic := kmsg.NewFetchRequestTopic()
	topic.Topic = "events"
	for _, index := range []int32{3, 4} {
		p := kmsg.NewFetchRequestTopicPartition()
		p.Partition, p.PartitionMaxBytes = index, 100
		topic.Partitions = append(topic.Partitions, p)
	}
	req.Topics = append(req.Topics, topic)
	resp := kmsg.NewPtrFetchResponse()
	resp.ErrorCode = 29 // TOPIC_AUTHORIZATION_FAILED, known to 0.10 clients
	apiCase{
		from: 2, to: 7, req: req,
		checkUp: func(t *testing.T, up kmsg.Request) {
			if r := up.(*kmsg.FetchRequest); r.SessionID != 0 || r.SessionEpoch != -1 {
				t.Fatalf("up: session %d epoch %d, want a sessionless fetch (0, -1)", r.SessionID, r.SessionEpoch)
			}
		},
		resp: resp,
		checkDown: func(t *testing.T, down kmsg.Response) {
			r := down.(*kmsg.FetchResponse)
			if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 2 {
				t.Fatalf("down: topics %+v, want the two partitions asked", r.Topics)
			}
			for _, p := range r.Topics[0].Partitions {
				if p.ErrorCode != 29 {
					t.Fatalf("down: partition %d error %d, want 29", p.Partition, p.ErrorCode)
				}
			}
		},
	}.run(t)
}

func TestListOffsetsUpDown(t *testing.T) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	topic := kmsg.NewListOffsetsRequestTopic()
	topic.Topic = "events"
	for _, c := range []struct {
		index int32
		ts    int64
		n     int32
	}{{0, -1, 1}, {1, -2, 5}, {2, -1, 0}, {3, -1, 1}, {4, 1700000000000, 1}} {
		p := kmsg.NewListOffsetsRequestTopicPartition()
		p.Partition, p.Timestamp, p.MaxNumOffsets = c.index, c.ts, c.n
		topic.Partitions = append(topic.Partitions, p)
	}
	req.Topics = append(req.Topics, topic)

	resp := kmsg.NewPtrListOffsetsResponse()
	rt := kmsg.NewListOffsetsResponseTopic()
	rt.Topic = "events"
	for _, c := range []struct {
		index  int32
		code   int16
		offset int64
	}{{0, 0, 100}, {1, 0, 7}, {2, 0, 100}, {3, codeOffsetNotAvailable, -1}, {4, 0, -1}} {
		p := kmsg.NewListOffsetsResponseTopicPartition()
		p.Partition, p.ErrorCode, p.Offset, p.Timestamp = c.index, c.code, c.offset, 1700000000001
		rt.Partitions = append(rt.Partitions, p)
	}
	resp.Topics = append(resp.Topics, rt)

	apiCase{
		from: 0, to: 1, req: req,
		checkUp: func(t *testing.T, up kmsg.Request) {
			ps := up.(*kmsg.ListOffsetsRequest).Topics[0].Partitions
			if len(ps) != 5 || ps[1].Timestamp != -2 || ps[4].Timestamp != 1700000000000 {
				t.Fatalf("up: partitions %+v", ps)
			}
		},
		resp: resp,
		checkDown: func(t *testing.T, down kmsg.Response) {
			ps := down.(*kmsg.ListOffsetsResponse).Topics[0].Partitions
			want := []struct {
				offsets []int64
				code    int16
			}{
				{[]int64{100}, 0},
				{[]int64{7}, 0},
				{nil, 0},                      // MaxNumOffsets 0
				{nil, codeLeaderNotAvailable}, // OFFSET_NOT_AVAILABLE, as before ListOffsets v5
				{nil, 0},                      // no offset at that timestamp
			}
			for i, p := range ps {
				if p.ErrorCode != want[i].code || len(p.OldStyleOffsets) != len(want[i].offsets) ||
					(len(p.OldStyleOffsets) == 1 && p.OldStyleOffsets[0] != want[i].offsets[0]) {
					t.Fatalf("down: partition %d: error %d offsets %v, want %d %v", p.Partition, p.ErrorCode, p.OldStyleOffsets, want[i].code, want[i].offsets)
				}
			}
		},
	}.run(t)
}

func TestParallelDown(t *testing.T) {
	plain := recordBatch(t, batchSpec{}, testRecords(2))
	gzipped := recordBatch(t, batchSpec{codec: compressionGzip}, testRecords(2))
	for _, c := range []struct {
		name   string
		pieces []setPiece
		want   bool
	}{
		{"two plain partitions", []setPiece{{records: plain}, {records: plain}}, true},
		{"one busy partition", []setPiece{{records: plain}}, false},
		{"a compressed batch", []setPiece{{records: plain}, {records: gzipped}}, false},
		{"a partial batch at the end", []setPiece{{records: plain}, {records: append(plain[:len(plain):len(plain)], plain[:20]...)}}, true},
	} {
		if got := parallelDown(c.pieces); got != c.want {
			t.Errorf("%s: parallel %v, want %v", c.name, got, c.want)
		}
	}
}

// A partition whose records are corrupt is answered CORRUPT_MESSAGE and the
// others go on to the broker, as a broker validates each partition on its
// own; an acks=0 produce has no answer to carry it and fails.
func TestProduceCorruptPartitionAnswered(t *testing.T) {
	good := legacySet(t, legacySetSpec{magic: 1}, []testRecord{{timestamp: 1700000000000, value: []byte("good")}})
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 0xff // the value no longer matches the CRC
	produce := func(acks int16) *kmsg.ProduceRequest {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = acks, 1500
		req.Topics = []kmsg.ProduceRequestTopic{
			{Topic: "orders", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: good}, {Partition: 7, Records: bad}}},
			{Topic: "audit", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 1, Records: bad}}},
		}
		return req
	}

	resp := kmsg.NewPtrProduceResponse()
	rt := kmsg.NewProduceResponseTopic()
	rt.Topic = "orders"
	rp := kmsg.NewProduceResponseTopicPartition()
	rp.Partition, rp.BaseOffset = 0, 41
	rt.Partitions = append(rt.Partitions, rp)
	resp.Topics = append(resp.Topics, rt)
	apiCase{
		from: 2, to: 3, req: produce(-1),
		checkUp: func(t *testing.T, up kmsg.Request) {
			r := up.(*kmsg.ProduceRequest)
			if len(r.Topics) != 1 || r.Topics[0].Topic != "orders" || len(r.Topics[0].Partitions) != 1 || r.Topics[0].Partitions[0].Partition != 0 {
				t.Fatalf("up: %+v, want only orders/0: the corrupt partitions stay with kproxy", r.Topics)
			}
		},
		resp: resp,
		checkDown: func(t *testing.T, down kmsg.Response) {
			got := map[string]int16{}
			for _, rt := range down.(*kmsg.ProduceResponse).Topics {
				for _, p := range rt.Partitions {
					got[fmt.Sprintf("%s/%d", rt.Topic, p.Partition)] = p.ErrorCode
					if p.ErrorCode == codeCorruptMessage && p.BaseOffset != -1 {
						t.Errorf("%s/%d: base offset %d, want -1", rt.Topic, p.Partition, p.BaseOffset)
					}
				}
			}
			want := map[string]int16{"orders/0": 0, "orders/7": codeCorruptMessage, "audit/1": codeCorruptMessage}
			if !maps.Equal(got, want) {
				t.Fatalf("down: error codes %v, want %v", got, want)
			}
		},
	}.run(t)

	_, x, err := Up(requestBytes(produce(-1), 2, &testClientID), int16(kmsg.Produce), 2, 3, testMaxOut)
	if n, why := x.Corrupt(); err != nil || n != 2 || !errors.Is(why, ErrCorruptRecords) {
		t.Fatalf("Corrupt() = %d, %v (Up: %v); want 2 partitions and the first's reason", n, why, err)
	}
	if _, _, err := Up(requestBytes(produce(0), 2, &testClientID), int16(kmsg.Produce), 2, 3, testMaxOut); !errors.Is(err, ErrCorruptRecords) {
		t.Fatalf("acks=0 with a corrupt partition: err = %v, want ErrCorruptRecords", err)
	}
}
