package bridge

// The topic, config and log-dir admin APIs whose first versions Kafka 4.0
// removed. Their later versions add fields with a default that means what
// the old version did, so the translation is kmsg's re-encoding plus:
//   - CreateTopics v0–1 → v2+: ValidateOnly false for v0. Exact.
//   - DeleteTopics v0 → v1+: from v6 the names move to the topic list.
//     Exact.
//   - DescribeConfigs v0 → v1+: no synonyms, no documentation; v0's
//     IsDefault is Source DEFAULT_CONFIG. Not exact: v0 brokers also called
//     some static broker configs default.
//   - AlterReplicaLogDirs, DescribeLogDirs v0 → v1+: v1 changed only when
//     the throttle applies. A top-level error (DescribeLogDirs v3+) reaches
//     v0 on every dir; with no dirs the answer is empty, as a v0 broker's
//     was for an unauthorized client.
// Error codes later than the client's release are mapped (error_codes.go).

import "github.com/twmb/franz-go/pkg/kmsg"

type (
	createTopics        struct{}
	deleteTopics        struct{}
	describeConfigs     struct{}
	alterReplicaLogDirs struct{}
	describeLogDirs     struct{}
)

func (createTopics) highestTo() int16 { return kmsg.NewPtrCreateTopicsRequest().MaxVersion() }
func (deleteTopics) highestTo() int16 { return kmsg.NewPtrDeleteTopicsRequest().MaxVersion() }
func (describeConfigs) highestTo() int16 {
	return kmsg.NewPtrDescribeConfigsRequest().MaxVersion()
}
func (alterReplicaLogDirs) highestTo() int16 {
	return kmsg.NewPtrAlterReplicaLogDirsRequest().MaxVersion()
}
func (describeLogDirs) highestTo() int16 { return kmsg.NewPtrDescribeLogDirsRequest().MaxVersion() }

func (createTopics) up(kmsg.Request, *Exchange, int) error        { return nil }
func (alterReplicaLogDirs) up(kmsg.Request, *Exchange, int) error { return nil }
func (describeLogDirs) up(kmsg.Request, *Exchange, int) error     { return nil }

func (deleteTopics) up(req kmsg.Request, _ *Exchange, _ int) error {
	r := req.(*kmsg.DeleteTopicsRequest)
	for _, name := range r.TopicNames {
		t := kmsg.NewDeleteTopicsRequestTopic()
		t.Topic = kmsg.StringPtr(name)
		r.Topics = append(r.Topics, t)
	}
	return nil
}

func (describeConfigs) up(req kmsg.Request, _ *Exchange, _ int) error {
	r := req.(*kmsg.DescribeConfigsRequest)
	r.IncludeSynonyms, r.IncludeDocumentation = false, false
	return nil
}

func (createTopics) down(resp kmsg.Response, x *Exchange, _ int) error {
	r := resp.(*kmsg.CreateTopicsResponse)
	for i := range r.Topics {
		r.Topics[i].ErrorCode = x.code(r.Topics[i].ErrorCode)
	}
	return nil
}

func (deleteTopics) down(resp kmsg.Response, x *Exchange, _ int) error {
	r := resp.(*kmsg.DeleteTopicsResponse)
	for i := range r.Topics {
		r.Topics[i].ErrorCode = x.code(r.Topics[i].ErrorCode)
	}
	return nil
}

func (describeConfigs) down(resp kmsg.Response, x *Exchange, _ int) error {
	r := resp.(*kmsg.DescribeConfigsResponse)
	for i := range r.Resources {
		res := &r.Resources[i]
		res.ErrorCode = x.code(res.ErrorCode)
		for j := range res.Configs {
			c := &res.Configs[j]
			c.IsDefault = c.Source == kmsg.ConfigSourceDefaultConfig
		}
	}
	return nil
}

func (alterReplicaLogDirs) down(resp kmsg.Response, x *Exchange, _ int) error {
	r := resp.(*kmsg.AlterReplicaLogDirsResponse)
	for i := range r.Topics {
		for j := range r.Topics[i].Partitions {
			p := &r.Topics[i].Partitions[j]
			p.ErrorCode = x.code(p.ErrorCode)
		}
	}
	return nil
}

func (describeLogDirs) down(resp kmsg.Response, x *Exchange, _ int) error {
	r := resp.(*kmsg.DescribeLogDirsResponse)
	for i := range r.Dirs {
		d := &r.Dirs[i]
		if r.ErrorCode != 0 && x.From < 3 {
			d.ErrorCode = r.ErrorCode
		}
		d.ErrorCode = x.code(d.ErrorCode)
	}
	r.ErrorCode = x.code(r.ErrorCode)
	return nil
}

func (createTopics) refuse(req kmsg.Request, resp kmsg.Response) {
	q, r := req.(*kmsg.CreateTopicsRequest), resp.(*kmsg.CreateTopicsResponse)
	for _, qt := range q.Topics {
		t := kmsg.NewCreateTopicsResponseTopic()
		t.Topic = qt.Topic
		r.Topics = append(r.Topics, t)
	}
}

func (deleteTopics) refuse(req kmsg.Request, resp kmsg.Response) {
	q, r := req.(*kmsg.DeleteTopicsRequest), resp.(*kmsg.DeleteTopicsResponse)
	for _, name := range q.TopicNames {
		t := kmsg.NewDeleteTopicsResponseTopic()
		t.Topic = kmsg.StringPtr(name)
		r.Topics = append(r.Topics, t)
	}
	for _, qt := range q.Topics {
		t := kmsg.NewDeleteTopicsResponseTopic()
		t.Topic, t.TopicID = qt.Topic, qt.TopicID
		r.Topics = append(r.Topics, t)
	}
}

func (describeConfigs) refuse(req kmsg.Request, resp kmsg.Response) {
	q, r := req.(*kmsg.DescribeConfigsRequest), resp.(*kmsg.DescribeConfigsResponse)
	for _, qr := range q.Resources {
		res := kmsg.NewDescribeConfigsResponseResource()
		res.ResourceType, res.ResourceName = qr.ResourceType, qr.ResourceName
		r.Resources = append(r.Resources, res)
	}
}

func (alterReplicaLogDirs) refuse(req kmsg.Request, resp kmsg.Response) {
	q, r := req.(*kmsg.AlterReplicaLogDirsRequest), resp.(*kmsg.AlterReplicaLogDirsResponse)
	for _, d := range q.Dirs {
		for _, qt := range d.Topics {
			t := kmsg.NewAlterReplicaLogDirsResponseTopic()
			t.Topic = qt.Topic
			for _, index := range qt.Partitions {
				p := kmsg.NewAlterReplicaLogDirsResponseTopicPartition()
				p.Partition = index
				t.Partitions = append(t.Partitions, p)
			}
			r.Topics = append(r.Topics, t)
		}
	}
}

func (describeLogDirs) refuse(kmsg.Request, kmsg.Response) {}
