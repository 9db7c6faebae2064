package bridge

// ListOffsets v0 asks, per partition, for up to MaxNumOffsets offsets before
// a timestamp; it goes up as v1+, which answers one offset (and its
// timestamp). The v0 answer's OldStyleOffsets is that one offset when the
// client asked for at least one and the broker found a valid one, else
// empty. Not exact: for latest (-1) and earliest (-2) the offset is the one
// v0 put first; for a real timestamp v0 answered the base offsets of the
// log segments older than it, v1 the first offset at or after it, and the
// further offsets v0 listed (MaxNumOffsets > 1) are not returned.

import "github.com/twmb/franz-go/pkg/kmsg"

type listOffsets struct{}

func (listOffsets) highestTo() int16 { return kmsg.NewPtrListOffsetsRequest().MaxVersion() }

func (listOffsets) up(req kmsg.Request, x *Exchange, _ int) error {
	r := req.(*kmsg.ListOffsetsRequest)
	if x.From > 0 {
		return nil
	}
	x.limit = make(map[partition]int32)
	for _, t := range r.Topics {
		for _, p := range t.Partitions {
			x.limit[partition{t.Topic, p.Partition}] = p.MaxNumOffsets
		}
	}
	return nil
}

func (listOffsets) down(resp kmsg.Response, x *Exchange, _ int) error {
	r := resp.(*kmsg.ListOffsetsResponse)
	for i := range r.Topics {
		t := &r.Topics[i]
		for j := range t.Partitions {
			p := &t.Partitions[j]
			p.ErrorCode = x.code(p.ErrorCode)
			if x.From > 0 {
				continue
			}
			p.OldStyleOffsets = nil
			if p.ErrorCode == 0 && p.Offset >= 0 && x.limit[partition{t.Topic, p.Partition}] >= 1 {
				p.OldStyleOffsets = []int64{p.Offset}
			}
		}
	}
	return nil
}

func (listOffsets) refuse(req kmsg.Request, resp kmsg.Response) {
	q, r := req.(*kmsg.ListOffsetsRequest), resp.(*kmsg.ListOffsetsResponse)
	for _, qt := range q.Topics {
		t := kmsg.NewListOffsetsResponseTopic()
		t.Topic = qt.Topic
		for _, qp := range qt.Partitions {
			p := kmsg.NewListOffsetsResponseTopicPartition()
			p.Partition = qp.Partition
			t.Partitions = append(t.Partitions, p)
		}
		r.Topics = append(r.Topics, t)
	}
}
