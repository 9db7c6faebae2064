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
	for i := range r.Topics {
		for j := range r.Topics[i].Partitions {
			p := &r.Topics[i].Partitions[j]
			p.ErrorCode = x.code(p.ErrorCode)
		}
	}
	return nil
}

// writeAnswer writes a Fetch v0–3 answer, whose record batches become
// message sets, in pieces: one per partition with records, holding its
// message set converted straight into a buffer of its own, behind the
// answer's bytes that precede it (the frame's head, a topic's name, the
// partition's fields). The client is sent the pieces in order, so no set is
// copied again into one frame: a consumer's answer is mostly its sets, of
// up to its MaxBytes per partition.
func (fetch) writeAnswer(resp kmsg.Response, x *Exchange, correlation uint32, maxOut int) ([][]byte, bool, error) {
	if x.From > 3 {
		return nil, false, nil // no record format to convert: kmsg encodes it
	}
	r := resp.(*kmsg.FetchResponse)
	magic := int8(1)
	if x.From < 2 {
		magic = 0
	}
	// The answer's layout at v0–3, cut before each set to convert. Fixed
	// widths (binary.BigEndian) are kmsg's encoding at these versions,
	// which TestFetchAnswerLayout holds it to.
	var pieces []setPiece
	head := make([]byte, 8, 64) // the frame's size, set last, and correlation id
	binary.BigEndian.PutUint32(head[4:], correlation)
	if x.From >= 1 {
		head = binary.BigEndian.AppendUint32(head, uint32(r.ThrottleMillis))
	}
	head = binary.BigEndian.AppendUint32(head, uint32(len(r.Topics)))
	for i := range r.Topics {
		t := &r.Topics[i]
		head = binary.BigEndian.AppendUint16(head, uint16(len(t.Topic)))
		head = append(head, t.Topic...)
		head = binary.BigEndian.AppendUint32(head, uint32(len(t.Partitions)))
		for j := range t.Partitions {
			p := &t.Partitions[j]
			head = binary.BigEndian.AppendUint32(head, uint32(p.Partition))
			head = binary.BigEndian.AppendUint16(head, uint16(p.ErrorCode))
			head = binary.BigEndian.AppendUint64(head, uint64(p.HighWatermark))
			if len(p.RecordBatches) == 0 {
				length := int32(-1) // kmsg's nullable bytes: nil is null
				if p.RecordBatches != nil {
					length = 0
				}
				head = binary.BigEndian.AppendUint32(head, uint32(length))
				continue
			}
			head = binary.BigEndian.AppendUint32(head, 0) // the set's length, once converted
			pieces = append(pieces, setPiece{head: head, records: p.RecordBatches, limit: x.limit[partition{t.Topic, p.Partition}]})
			head = nil
		}
	}
	if err := convertSets(x.alloc, pieces, magic, maxOut); err != nil {
		return nil, true, err
	}
	frame := make([][]byte, 0, len(pieces)+1)
	size := -4
	for _, p := range pieces {
		frame = append(frame, p.out)
		size += len(p.out)
	}
	if len(head) > 0 || len(frame) == 0 {
		frame = append(frame, append(x.alloc.get(len(head)), head...))
		size += len(head)
	}
	if size > maxOut {
		return nil, true, tooLarge("converted fetch answer", maxOut)
	}
	binary.BigEndian.PutUint32(frame[0], uint32(size))
	return frame, true, nil
}

// setPiece is one partition's piece of a Fetch v0–3 answer.
type setPiece struct {
	head    []byte // the answer's bytes before the set, its length last
	records []byte // the broker's record batches
	limit   int32  // the partition's MaxBytes
	out     []byte // head, then the message set
}

// convertSets converts each piece's records to a message set of magic
// into its out, behind its head.
func convertSets(alloc Allocator, pieces []setPiece, magic int8, maxOut int) error {
	if !parallelDown(pieces) {
		budget := maxOut
		for i := range pieces {
			if err := pieces[i].convert(alloc, magic, budget); err != nil {
				return err
			}
			budget -= len(pieces[i].out) - len(pieces[i].head)
		}
		return nil
	}
	// A consumer's answer holds up to its MaxBytes per partition and the
	// client waits for all of it: the partitions convert at once, on as
	// many goroutines as there are processors. Only uncompressed ones:
	// each output is then bounded by its partition's MaxBytes (one
	// message more at most), and nothing is inflated on the way.
	errs := make([]error, len(pieces))
	var wg sync.WaitGroup
	next := make(chan int, len(pieces))
	for i := range pieces {
		next <- i
	}
	close(next)
	for range min(len(pieces), runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := range next {
				errs[i] = pieces[i].convert(alloc, magic, maxOut)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (p *setPiece) convert(alloc Allocator, magic int8, maxOut int) error {
	n := len(p.head)
	out := append(alloc.get(n+setSizeHint(p.records, p.limit, maxOut)), p.head...)
	set, err := downRecords(alloc, out[n:n], p.records, magic, p.limit, maxOut)
	if err != nil {
		return err
	}
	if cap(set) == cap(out)-n {
		out = out[:n+len(set)] // converted in place
	} else {
		out = append(append(alloc.get(n+len(set)), p.head...), set...) // it outgrew its buffer
	}
	binary.BigEndian.PutUint32(out[n-4:], uint32(len(set)))
	p.out = out
	return nil
}

// parallelDown reports whether pieces are worth converting at once: more
// than one, and no batch is compressed (or of another magic, which the
// converter reads as a set of its own).
func parallelDown(pieces []setPiece) bool {
	for _, p := range pieces {
		for b := p.records; len(b) > recordBatchAttrsAt+1; {
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
	return len(pieces) > 1
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
