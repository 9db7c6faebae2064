package bridge

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFetchAnswerLayout holds the Fetch v0–3 answer that writeAnswer writes
// in pieces to kmsg's encoding of the same answer (each partition's records
// replaced by DownRecords' output), and checks that each set was converted
// in place: every piece but a last one of bare fields is the start of the
// one buffer the allocator lent that holds it, so nothing was copied after
// the conversion.
func TestFetchAnswerLayout(t *testing.T) {
	plain := func(base int64) []byte {
		return recordBatch(t, batchSpec{baseOffset: base}, testRecords(5))
	}
	gzipped := recordBatch(t, batchSpec{codec: compressionGzip, baseOffset: 30}, testRecords(4))
	type part struct {
		records []byte
		limit   int32
	}
	type topic struct {
		name  string
		parts []part
	}
	for _, c := range []struct {
		name   string
		topics []topic
	}{
		{"plain partitions convert at once", []topic{
			{"a", []part{{plain(0), 1 << 20}, {nil, 100}, {plain(10), 200}}},
			{"b", nil},
			{"c", []part{{plain(20), 1 << 20}, {[]byte{}, 100}}},
			{"z", nil},
		}},
		{"a compressed batch converts in turn", []topic{
			{"a", []part{{plain(0), 1 << 20}, {gzipped, 1 << 20}}},
			{"b", []part{{nil, 100}}},
		}},
		{"one partition", []topic{{"a", []part{{plain(0), 1 << 20}}}}},
		{"no records", []topic{{"a", []part{{nil, 100}, {nil, 100}}}}},
		{"no topics", nil},
	} {
		for from := int16(0); from <= 3; from++ {
			t.Run(fmt.Sprintf("%s/v%d", c.name, from), func(t *testing.T) {
				req := kmsg.NewPtrFetchRequest()
				resp := kmsg.NewPtrFetchResponse()
				resp.ThrottleMillis = 7
				for _, tc := range c.topics {
					rt, qt := kmsg.NewFetchRequestTopic(), kmsg.NewFetchResponseTopic()
					rt.Topic, qt.Topic = tc.name, tc.name
					for i, p := range tc.parts {
						rp, qp := kmsg.NewFetchRequestTopicPartition(), kmsg.NewFetchResponseTopicPartition()
						rp.Partition, rp.PartitionMaxBytes = int32(i), p.limit
						qp.Partition, qp.HighWatermark, qp.RecordBatches = int32(i), 100+int64(i), p.records
						rt.Partitions, qt.Partitions = append(rt.Partitions, rp), append(qt.Partitions, qp)
					}
					req.Topics, resp.Topics = append(req.Topics, rt), append(resp.Topics, qt)
				}
				_, x, err := Up(requestBytes(req, from, &testClientID), int16(kmsg.Fetch), from, 4, testMaxOut)
				if err != nil {
					t.Fatal(err)
				}
				var lent [][]byte
				var mu sync.Mutex // partitions convert at once
				alloc := Allocator{Get: func(n int) []byte {
					b := make([]byte, 0, n)
					mu.Lock()
					lent = append(lent, b)
					mu.Unlock()
					return b
				}}
				pieces, err := x.DownAlloc(alloc, responseFrame(resp, 4), testMaxOut)
				if err != nil {
					t.Fatal(err)
				}

				want := decodeResponseFrame(t, responseFrame(resp, 4), int16(kmsg.Fetch), 4).(*kmsg.FetchResponse)
				magic := map[bool]int8{true: 0, false: 1}[from < 2]
				busy := 0
				for i, tc := range c.topics {
					for j, p := range tc.parts {
						wp := &want.Topics[i].Partitions[j]
						if len(p.records) > 0 {
							busy++
							if wp.RecordBatches, err = DownRecords(p.records, magic, p.limit, testMaxOut); err != nil {
								t.Fatal(err)
							}
						}
					}
				}
				wantFrame, err := encodeResponse(Allocator{}, want, from, uint32(testCorrelation), testMaxOut, 0)
				if err != nil {
					t.Fatal(err)
				}
				if got := slices.Concat(pieces...); !bytes.Equal(got, wantFrame) {
					t.Fatalf("answer of %d bytes in %d pieces differs from kmsg's of %d bytes", len(got), len(pieces), len(wantFrame))
				}

				if len(pieces) < busy || len(pieces) > busy+1 {
					t.Fatalf("%d pieces for %d partitions with records", len(pieces), busy)
				}
				for i, piece := range pieces[:busy] {
					// Lent buffers that hold the piece's set, its second half
					// (its head is a few bytes): one, unless it was copied.
					set := piece[len(piece)/2:]
					holds := func(b []byte) bool { return cap(b) >= len(piece) && bytes.Equal(b[len(piece)/2:len(piece)], set) }
					holding := 0
					for _, b := range lent {
						if holds(b) {
							holding++
						}
					}
					if holding != 1 || &lent[slices.IndexFunc(lent, holds)][:1][0] != &piece[0] {
						t.Errorf("piece %d of %d bytes: its set is in %d lent buffers, want in one, which the piece is", i, len(piece), holding)
					}
				}
			})
		}
	}
}
