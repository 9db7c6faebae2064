package bridge

// OffsetForLeaderEpoch v0 and v1 go up as the broker's lowest version (v2
// for Kafka 4.0, v3 for kfake): as a consumer (replica -1) with no current
// leader epoch to fence on (-1). v0's answer has no leader epoch; v1 and on
// keep it. Not exact: nothing; the fencing errors v2 added cannot arise
// without a current epoch and map to NOT_LEADER_FOR_PARTITION if they do.

import "github.com/twmb/franz-go/pkg/kmsg"

type offsetForLeaderEpoch struct{}

func (offsetForLeaderEpoch) highestTo() int16 {
	return kmsg.NewPtrOffsetForLeaderEpochRequest().MaxVersion()
}

func (offsetForLeaderEpoch) up(req kmsg.Request, _ *Exchange, _ int) error {
	r := req.(*kmsg.OffsetForLeaderEpochRequest)
	r.ReplicaID = -1
	for i := range r.Topics {
		for j := range r.Topics[i].Partitions {
			r.Topics[i].Partitions[j].CurrentLeaderEpoch = -1
		}
	}
	return nil
}

func (offsetForLeaderEpoch) down(resp kmsg.Response, x *Exchange, _ int) error {
	r := resp.(*kmsg.OffsetForLeaderEpochResponse)
	for i := range r.Topics {
		for j := range r.Topics[i].Partitions {
			p := &r.Topics[i].Partitions[j]
			p.ErrorCode = x.code(p.ErrorCode)
		}
	}
	return nil
}

func (offsetForLeaderEpoch) refuse(req kmsg.Request, resp kmsg.Response) {
	q, r := req.(*kmsg.OffsetForLeaderEpochRequest), resp.(*kmsg.OffsetForLeaderEpochResponse)
	for _, qt := range q.Topics {
		t := kmsg.NewOffsetForLeaderEpochResponseTopic()
		t.Topic = qt.Topic
		for _, qp := range qt.Partitions {
			p := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			p.Partition, p.LeaderEpoch, p.EndOffset = qp.Partition, -1, -1
			t.Partitions = append(t.Partitions, p)
		}
		r.Topics = append(r.Topics, t)
	}
}
