package bridge

// OffsetCommit v0 and v1 go up as v2+. v0 commits as no group member
// (generation -1, member ""), as a simple consumer commits; both keep the
// broker's retention (-1). Not exact: v0 stored offsets in ZooKeeper, which
// 4.x does not have, so a v0 client's offsets are stored in Kafka (and read
// back by OffsetFetch v0, which the bridge sends there too); v1's
// per-partition commit timestamp, which set the retention start, is dropped.

import "github.com/twmb/franz-go/pkg/kmsg"

type offsetCommit struct{}

func (offsetCommit) highestTo() int16 { return 9 } // v10 names topics by id

func (offsetCommit) up(req kmsg.Request, x *Exchange, _ int) error {
	r := req.(*kmsg.OffsetCommitRequest)
	if x.From == 0 {
		r.Generation, r.MemberID = -1, ""
	}
	if x.From < 2 {
		r.RetentionTimeMillis = -1
	}
	return nil
}

func (offsetCommit) down(resp kmsg.Response, x *Exchange, _ int) error {
	r := resp.(*kmsg.OffsetCommitResponse)
	for i := range r.Topics {
		for j := range r.Topics[i].Partitions {
			p := &r.Topics[i].Partitions[j]
			p.ErrorCode = x.code(p.ErrorCode)
		}
	}
	return nil
}

func (offsetCommit) refuse(req kmsg.Request, resp kmsg.Response) {
	q, r := req.(*kmsg.OffsetCommitRequest), resp.(*kmsg.OffsetCommitResponse)
	for _, qt := range q.Topics {
		t := kmsg.NewOffsetCommitResponseTopic()
		t.Topic = qt.Topic
		for _, qp := range qt.Partitions {
			p := kmsg.NewOffsetCommitResponseTopicPartition()
			p.Partition = qp.Partition
			t.Partitions = append(t.Partitions, p)
		}
		r.Topics = append(r.Topics, t)
	}
}
