package bridge

// OffsetFetch v0 goes up as v1 (up to v7; v8 asks per group). Same fields;
// from v2 on the answer has a top-level error, which v0 and v1 carry on
// every partition, as Kafka did for them. Not exact: v0 read offsets from
// ZooKeeper, which 4.x does not have; the bridge reads the offsets stored in
// Kafka, so offsets a v0 client committed through ZooKeeper before the
// upgrade are gone, and it sees what it commits through the bridge
// (OffsetCommit v0 is sent to Kafka too).

import "github.com/twmb/franz-go/pkg/kmsg"

type offsetFetch struct{}

func (offsetFetch) highestTo() int16 { return 7 }

func (offsetFetch) up(req kmsg.Request, x *Exchange, _ int) error {
	r := req.(*kmsg.OffsetFetchRequest)
	for _, t := range r.Topics {
		for _, p := range t.Partitions {
			x.asked = append(x.asked, partition{t.Topic, p})
		}
	}
	return nil
}

func (offsetFetch) down(resp kmsg.Response, x *Exchange, _ int) error {
	r := resp.(*kmsg.OffsetFetchResponse)
	if r.ErrorCode != 0 && x.From < 2 {
		if len(r.Topics) == 0 {
			r.Topics = offsetFetchTopics(x.asked)
		}
		setErrorCodes(r.Topics, r.ErrorCode)
	}
	for i := range r.Topics {
		for j := range r.Topics[i].Partitions {
			p := &r.Topics[i].Partitions[j]
			p.ErrorCode = x.code(p.ErrorCode)
		}
	}
	r.ErrorCode = x.code(r.ErrorCode)
	return nil
}

func (offsetFetch) refuse(req kmsg.Request, resp kmsg.Response) {
	q, r := req.(*kmsg.OffsetFetchRequest), resp.(*kmsg.OffsetFetchResponse)
	var asked []partition
	for _, t := range q.Topics {
		for _, p := range t.Partitions {
			asked = append(asked, partition{t.Topic, p})
		}
	}
	r.Topics = offsetFetchTopics(asked)
}

// offsetFetchTopics is an answer's topics for the partitions asked, each
// with no offset.
func offsetFetchTopics(asked []partition) []kmsg.OffsetFetchResponseTopic {
	var topics []kmsg.OffsetFetchResponseTopic
	for _, tp := range asked {
		if len(topics) == 0 || topics[len(topics)-1].Topic != tp.topic {
			t := kmsg.NewOffsetFetchResponseTopic()
			t.Topic = tp.topic
			topics = append(topics, t)
		}
		p := kmsg.NewOffsetFetchResponseTopicPartition()
		p.Partition, p.Offset = tp.index, -1
		t := &topics[len(topics)-1]
		t.Partitions = append(t.Partitions, p)
	}
	return topics
}
