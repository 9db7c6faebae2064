package bridge

// Produce v0–2 (message sets of magic 0 and 1) go up as v3+ (RecordBatch
// v2): each partition's records are converted by UpMessageSet, the rest of
// the request is unchanged and carries no transactional id. The answer keeps
// its base offset, log append time (v2) and throttle (v1+); error codes the
// client's release did not know are mapped (error_codes.go). Not exact: a
// magic 0 message has no timestamp, so its record carries -1 (and a topic
// with LogAppendTime the broker's time); acks=0 gets no answer, as ever.
//
// A partition whose records are corrupt (a CRC that does not match, a
// wrapper that does not decompress) is answered CORRUPT_MESSAGE and the
// others go on, as a broker validates each partition on its own; the
// broker's partitions' answers come back with it. With acks=0 there is no
// answer to carry the error: the translation fails, and the client's
// connection closes, as a broker closes it on any error of an acks=0
// produce.

import (
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

type produce struct{}

func (produce) highestTo() int16 { return 12 } // v13 names topics by id

func (produce) up(req kmsg.Request, x *Exchange, maxOut int) error {
	r := req.(*kmsg.ProduceRequest)
	if x.From >= 3 {
		return nil
	}
	// Output and decompression each within maxOut, for the whole request:
	// a frame of many small wrappers must not cost maxOut per partition.
	budget, inflate := maxOut, maxOut
	topics := r.Topics[:0]
	for _, t := range r.Topics {
		partitions := t.Partitions[:0]
		for _, p := range t.Partitions {
			batch, err := upMessageSet(x.alloc, p.Records, budget, &inflate)
			switch {
			case errors.Is(err, ErrCorruptRecords) && r.Acks != 0:
				x.corrupt = append(x.corrupt, partition{t.Topic, p.Partition})
				if x.corruptErr == nil {
					x.corruptErr = err
				}
				continue
			case err != nil:
				return err
			}
			p.Records = batch
			budget -= len(batch)
			partitions = append(partitions, p)
		}
		if len(partitions) > 0 {
			t.Partitions = partitions
			topics = append(topics, t)
		}
	}
	r.Topics = topics
	return nil
}

func (produce) down(resp kmsg.Response, x *Exchange, _ int) error {
	r := resp.(*kmsg.ProduceResponse)
	for i := range r.Topics {
		for j := range r.Topics[i].Partitions {
			p := &r.Topics[i].Partitions[j]
			p.ErrorCode = x.code(p.ErrorCode)
		}
	}
	for _, c := range x.corrupt {
		i := slices.IndexFunc(r.Topics, func(t kmsg.ProduceResponseTopic) bool { return t.Topic == c.topic })
		if i < 0 {
			t := kmsg.NewProduceResponseTopic()
			t.Topic = c.topic
			r.Topics = append(r.Topics, t)
			i = len(r.Topics) - 1
		}
		p := kmsg.NewProduceResponseTopicPartition()
		p.Partition, p.ErrorCode, p.BaseOffset = c.index, codeCorruptMessage, -1
		r.Topics[i].Partitions = append(r.Topics[i].Partitions, p)
	}
	return nil
}

func (produce) refuse(req kmsg.Request, resp kmsg.Response) {
	q, r := req.(*kmsg.ProduceRequest), resp.(*kmsg.ProduceResponse)
	for _, qt := range q.Topics {
		t := kmsg.NewProduceResponseTopic()
		t.Topic = qt.Topic
		for _, qp := range qt.Partitions {
			p := kmsg.NewProduceResponseTopicPartition()
			p.Partition = qp.Partition
			p.BaseOffset = -1
			t.Partitions = append(t.Partitions, p)
		}
		r.Topics = append(r.Topics, t)
	}
}
