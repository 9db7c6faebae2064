package bridge

// Fetch v0–3 go up as v4+ with isolation read_uncommitted. v0–2 have no
// request MaxBytes; the bridge asks for the sum of the partitions' MaxBytes,
// capped at maxOut. Each answer partition's record batches become a message
// set by DownRecords, of magic 0 for v0–1 and 1 for v2–3, bounded by that
// partition's requested MaxBytes. Not exact: LastStableOffset, the aborted
// transactions and (v5+) LogStartOffset have no place in the old answer and
// are dropped; a message the old answer cannot hold whole is left for the
// client's next fetch where a 0.10 broker sent a partial one; a top-level
// error (v7+) reaches the client on every partition it asked for.

import (
	"encoding/binary"
	"errors"
	"runtime"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

type fetch struct{}

func (fetch) highestTo() int16 { return 12 } // v13 names topics by id

func (fetch) up(req kmsg.Request, x *Exchange, maxOut int) error {
	r := req.(*kmsg.FetchRequest)
	x.limit = make(map[partition]int32)
	var sum int64
	for _, t := range r.Topics {
		for _, p := range t.Partitions {
			tp := partition{t.Topic, p.Partition}
			x.asked = append(x.asked, tp)
			x.limit[tp] = p.PartitionMaxBytes
			sum += int64(max(p.PartitionMaxBytes, 0))
		}
	}
	if x.From < 3 {
		r.MaxBytes = int32(min(sum, int64(maxOut), 1<<31-1))
	}
	r.IsolationLevel = 0
	return nil
}

func (fetch) down(resp kmsg.Response, x *Exchange, maxOut int) error {
	r := resp.(*kmsg.FetchResponse)
	if r.ErrorCode != 0 && len(r.Topics) == 0 {
		r.Topics = fetchTopics(x.asked)
		setErrorCodes(r.Topics, r.ErrorCode)
	}
	magic := int8(1)
	if x.From < 2 {
		magic = 0
	}
	var parts []*kmsg.FetchResponseTopicPartition
	var limits []int32
	for i := range r.Topics {
		t := &r.Topics[i]
		for j := range t.Partitions {
			p := &t.Partitions[j]
			p.ErrorCode = x.code(p.ErrorCode)
			if x.From <= 3 {
				parts = append(parts, p)
				limits = append(limits, x.limit[partition{t.Topic, p.Partition}])
			}
		}
	}
	sets := make([][]byte, len(parts))
	if parallelDown(parts) {
		// A consumer's answer holds up to its MaxBytes per partition and
		// the client waits for all of it: the partitions convert at once,
		// on as many goroutines as there are processors. Only uncompressed
		// ones: each output is then bounded by its partition's MaxBytes
		// (one message more at most), and nothing is inflated on the way.
		errs := make([]error, len(parts))
		var wg sync.WaitGroup
		next := make(chan int, len(parts))
		for i := range parts {
			next <- i
		}
		close(next)
		for range min(len(parts), runtime.GOMAXPROCS(0)) {
			wg.Go(func() {
				for i := range next {
					sets[i], errs[i] = downRecords(x.alloc, parts[i].RecordBatches, magic, limits[i], maxOut)
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	} else {
		budget := maxOut
		for i, p := range parts {
			set, err := downRecords(x.alloc, p.RecordBatches, magic, limits[i], budget)
			if err != nil {
				return err
			}
			sets[i] = set
			budget -= len(set)
		}
	}
	total := 0
	for i, p := range parts {
		total += len(sets[i])
		x.grown += len(sets[i]) - len(p.RecordBatches)
		p.RecordBatches = sets[i]
	}
	if total > maxOut {
		return tooLarge("converted fetch answer", maxOut)
	}
	return nil
}

// parallelDown reports whether parts are worth converting at once: more
// than one holds a batch, and no batch is compressed (or of another magic,
// which the converter reads as a set of its own).
func parallelDown(parts []*kmsg.FetchResponseTopicPartition) bool {
	busy := 0
	for _, p := range parts {
		if len(p.RecordBatches) > 0 {
			busy++
		}
		for b := p.RecordBatches; len(b) > recordBatchAttrsAt+1; {
			size := int(int32(binary.BigEndian.Uint32(b[8:])))
			if size < 0 || size > len(b)-recordBatchLogOverhead {
				break // a partial batch at the end: left out
			}
			if b[magicAt] != 2 || b[recordBatchAttrsAt+1]&0x07 != 0 {
				return false
			}
			b = b[recordBatchLogOverhead+size:]
		}
	}
	return busy > 1
}

func (fetch) refuse(req kmsg.Request, resp kmsg.Response) {
	q, r := req.(*kmsg.FetchRequest), resp.(*kmsg.FetchResponse)
	var asked []partition
	for _, t := range q.Topics {
		for _, p := range t.Partitions {
			asked = append(asked, partition{t.Topic, p.Partition})
		}
	}
	r.Topics = fetchTopics(asked)
}

// fetchTopics is an answer's topics for the partitions asked, with nothing
// known of them.
func fetchTopics(asked []partition) []kmsg.FetchResponseTopic {
	var topics []kmsg.FetchResponseTopic
	for _, tp := range asked {
		if len(topics) == 0 || topics[len(topics)-1].Topic != tp.topic {
			t := kmsg.NewFetchResponseTopic()
			t.Topic = tp.topic
			topics = append(topics, t)
		}
		p := kmsg.NewFetchResponseTopicPartition()
		p.Partition = tp.index
		p.HighWatermark, p.LastStableOffset = -1, -1
		t := &topics[len(topics)-1]
		t.Partitions = append(t.Partitions, p)
	}
	return topics
}
