package bridge

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreateTopics v1 is not flexible and v5 is: the request header gains a tag
// section going up and the answer's loses one coming down, while the
// correlation id and client id survive (checked by apiCase.run).
func TestCreateTopicsUpDown(t *testing.T) {
	for _, c := range []struct{ from, to int16 }{{0, 2}, {1, 2}, {1, 5}} {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.TimeoutMillis, req.ValidateOnly = 30000, c.from == 1
		topic := kmsg.NewCreateTopicsRequestTopic()
		topic.Topic, topic.NumPartitions, topic.ReplicationFactor = "new-topic", 6, 3
		topic.Configs = []kmsg.CreateTopicsRequestTopicConfig{{Name: "cleanup.policy", Value: kmsg.StringPtr("compact")}}
		req.Topics = append(req.Topics, topic)

		resp := kmsg.NewPtrCreateTopicsResponse()
		resp.ThrottleMillis = 4
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic, rt.ErrorCode, rt.ErrorMessage = "new-topic", codePolicyViolation, kmsg.StringPtr("no")
		rt.NumPartitions, rt.ReplicationFactor = 6, 3
		resp.Topics = append(resp.Topics, rt)

		apiCase{
			from: c.from, to: c.to, req: req,
			checkUp: func(t *testing.T, up kmsg.Request) {
				r := up.(*kmsg.CreateTopicsRequest)
				if !up.IsFlexible() && c.to == 5 {
					t.Fatal("v5 request not flexible")
				}
				tp := r.Topics[0]
				if r.TimeoutMillis != 30000 || r.ValidateOnly != (c.from == 1) || tp.Topic != "new-topic" ||
					tp.NumPartitions != 6 || tp.ReplicationFactor != 3 || len(tp.Configs) != 1 || *tp.Configs[0].Value != "compact" {
					t.Fatalf("v%d→v%d up: %+v", c.from, c.to, r)
				}
			},
			resp: resp,
			checkDown: func(t *testing.T, down kmsg.Response) {
				rt := down.(*kmsg.CreateTopicsResponse).Topics[0]
				// POLICY_VIOLATION came with v1 (0.10.2); v0 clients get INVALID_REQUEST.
				want := codePolicyViolation
				if c.from == 0 {
					want = codeInvalidRequest
				}
				if rt.Topic != "new-topic" || rt.ErrorCode != want {
					t.Fatalf("v%d→v%d down: %+v, want error %d", c.from, c.to, rt, want)
				}
				if (rt.ErrorMessage != nil) != (c.from == 1) {
					t.Fatalf("v%d→v%d down: error message %v", c.from, c.to, rt.ErrorMessage)
				}
			},
		}.run(t)
	}
}

func TestDeleteTopicsUpDown(t *testing.T) {
	for _, to := range []int16{1, 6} {
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.TimeoutMillis, req.TopicNames = 15000, []string{"a", "b"}

		resp := kmsg.NewPtrDeleteTopicsResponse()
		for _, c := range []struct {
			name string
			code int16
		}{{"a", 0}, {"b", codeTopicDeletionDisabled}} {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic, rt.ErrorCode = kmsg.StringPtr(c.name), c.code
			resp.Topics = append(resp.Topics, rt)
		}

		apiCase{
			from: 0, to: to, req: req,
			checkUp: func(t *testing.T, up kmsg.Request) {
				r := up.(*kmsg.DeleteTopicsRequest)
				var names []string
				if to >= 6 {
					for _, tp := range r.Topics {
						names = append(names, *tp.Topic)
					}
				} else {
					names = r.TopicNames
				}
				if r.TimeoutMillis != 15000 || len(names) != 2 || names[0] != "a" || names[1] != "b" {
					t.Fatalf("v0→v%d up: timeout %d names %v", to, r.TimeoutMillis, names)
				}
			},
			resp: resp,
			checkDown: func(t *testing.T, down kmsg.Response) {
				ts := down.(*kmsg.DeleteTopicsResponse).Topics
				if len(ts) != 2 || *ts[0].Topic != "a" || ts[0].ErrorCode != 0 || ts[1].ErrorCode != codeInvalidRequest {
					t.Fatalf("v0→v%d down: %+v (TOPIC_DELETION_DISABLED must be INVALID_REQUEST)", to, ts)
				}
			},
		}.run(t)
	}
}

func TestOffsetForLeaderEpochUpDown(t *testing.T) {
	for from := int16(0); from <= 1; from++ {
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		topic := kmsg.NewOffsetForLeaderEpochRequestTopic()
		topic.Topic = "events"
		p := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		p.Partition, p.LeaderEpoch = 4, 17
		topic.Partitions = append(topic.Partitions, p)
		req.Topics = append(req.Topics, topic)

		resp := kmsg.NewPtrOffsetForLeaderEpochResponse()
		rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
		rt.Topic = "events"
		rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
		rp.Partition, rp.LeaderEpoch, rp.EndOffset, rp.ErrorCode = 4, 16, 1234, codeFencedLeaderEpoch
		rt.Partitions = append(rt.Partitions, rp)
		resp.Topics = append(resp.Topics, rt)

		apiCase{
			from: from, to: 3, req: req,
			checkUp: func(t *testing.T, up kmsg.Request) {
				r := up.(*kmsg.OffsetForLeaderEpochRequest)
				p := r.Topics[0].Partitions[0]
				if r.ReplicaID != -1 || r.Topics[0].Topic != "events" || p.Partition != 4 || p.LeaderEpoch != 17 || p.CurrentLeaderEpoch != -1 {
					t.Fatalf("v%d up: replica %d partition %+v", from, r.ReplicaID, p)
				}
			},
			resp: resp,
			checkDown: func(t *testing.T, down kmsg.Response) {
				p := down.(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]
				wantEpoch := int32(16)
				if from == 0 {
					wantEpoch = -1 // not in v0: kmsg leaves its default
				}
				if p.Partition != 4 || p.EndOffset != 1234 || p.LeaderEpoch != wantEpoch || p.ErrorCode != codeNotLeader {
					t.Fatalf("v%d down: %+v", from, p)
				}
			},
		}.run(t)
	}
}

func TestACLsUpDown(t *testing.T) {
	literal, prefixed := kmsg.ACLResourcePatternTypeLiteral, kmsg.ACLResourcePatternTypePrefixed

	describe := kmsg.NewPtrDescribeACLsRequest()
	describe.ResourceType, describe.ResourceName = kmsg.ACLResourceTypeTopic, kmsg.StringPtr("orders")
	describe.ResourcePatternType = prefixed // v0 cannot say this; Up must send LITERAL
	describe.Operation, describe.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	describeResp := kmsg.NewPtrDescribeACLsResponse()
	for _, pt := range []kmsg.ACLResourcePatternType{literal, prefixed} {
		res := kmsg.NewDescribeACLsResponseResource()
		res.ResourceType, res.ResourceName, res.ResourcePatternType = kmsg.ACLResourceTypeTopic, "orders", pt
		res.ACLs = []kmsg.DescribeACLsResponseResourceACL{{Principal: "User:a", Host: "*", Operation: kmsg.ACLOperationRead, PermissionType: kmsg.ACLPermissionTypeAllow}}
		describeResp.Resources = append(describeResp.Resources, res)
	}

	create := kmsg.NewPtrCreateACLsRequest()
	creation := kmsg.NewCreateACLsRequestCreation()
	creation.ResourceType, creation.ResourceName, creation.Principal, creation.Host = kmsg.ACLResourceTypeTopic, "orders", "User:a", "*"
	creation.Operation, creation.PermissionType = kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow
	create.Creations = append(create.Creations, creation)
	createResp := kmsg.NewPtrCreateACLsResponse()
	createResp.Results = []kmsg.CreateACLsResponseResult{{ErrorCode: 54}} // SECURITY_DISABLED, 0.11

	del := kmsg.NewPtrDeleteACLsRequest()
	filter := kmsg.NewDeleteACLsRequestFilter()
	filter.ResourceType, filter.ResourceName = kmsg.ACLResourceTypeTopic, kmsg.StringPtr("orders")
	del.Filters = append(del.Filters, filter)
	delResp := kmsg.NewPtrDeleteACLsResponse()
	result := kmsg.NewDeleteACLsResponseResult()
	for _, pt := range []kmsg.ACLResourcePatternType{prefixed, literal} {
		m := kmsg.NewDeleteACLsResponseResultMatchingACL()
		m.ResourceType, m.ResourceName, m.ResourcePatternType, m.Principal = kmsg.ACLResourceTypeTopic, "orders", pt, "User:a"
		result.MatchingACLs = append(result.MatchingACLs, m)
	}
	delResp.Results = append(delResp.Results, result)

	for _, c := range []apiCase{{
		name: "describe", req: describe, resp: describeResp,
		checkUp: func(t *testing.T, up kmsg.Request) {
			r := up.(*kmsg.DescribeACLsRequest)
			if r.ResourcePatternType != literal || *r.ResourceName != "orders" || r.ResourceType != kmsg.ACLResourceTypeTopic {
				t.Fatalf("up: %+v", r)
			}
		},
		checkDown: func(t *testing.T, down kmsg.Response) {
			rs := down.(*kmsg.DescribeACLsResponse).Resources
			if len(rs) != 1 || rs[0].ResourceName != "orders" || len(rs[0].ACLs) != 1 {
				t.Fatalf("down: %+v, want only the literal resource", rs)
			}
		},
	}, {
		name: "create", req: create, resp: createResp,
		checkUp: func(t *testing.T, up kmsg.Request) {
			cs := up.(*kmsg.CreateACLsRequest).Creations
			if len(cs) != 1 || cs[0].ResourcePatternType != literal || cs[0].Principal != "User:a" {
				t.Fatalf("up: %+v", cs)
			}
		},
		checkDown: func(t *testing.T, down kmsg.Response) {
			if rs := down.(*kmsg.CreateACLsResponse).Results; len(rs) != 1 || rs[0].ErrorCode != 54 {
				t.Fatalf("down: %+v", rs)
			}
		},
	}, {
		name: "delete", req: del, resp: delResp,
		checkUp: func(t *testing.T, up kmsg.Request) {
			fs := up.(*kmsg.DeleteACLsRequest).Filters
			if len(fs) != 1 || fs[0].ResourcePatternType != literal || *fs[0].ResourceName != "orders" {
				t.Fatalf("up: %+v", fs)
			}
		},
		checkDown: func(t *testing.T, down kmsg.Response) {
			rs := down.(*kmsg.DeleteACLsResponse).Results
			if len(rs) != 1 || len(rs[0].MatchingACLs) != 1 || rs[0].MatchingACLs[0].Principal != "User:a" {
				t.Fatalf("down: %+v, want only the literal match", rs)
			}
		},
	}} {
		t.Run(c.name, func(t *testing.T) {
			c.from, c.to = 0, 1
			c.run(t)
		})
	}
}

func TestDescribeConfigsUpDown(t *testing.T) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType, res.ResourceName, res.ConfigNames = kmsg.ConfigResourceTypeTopic, "orders", []string{"retention.ms", "cleanup.policy"}
	req.Resources = append(req.Resources, res)

	resp := kmsg.NewPtrDescribeConfigsResponse()
	rr := kmsg.NewDescribeConfigsResponseResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "orders"
	for _, c := range []struct {
		name   string
		source kmsg.ConfigSource
	}{{"retention.ms", kmsg.ConfigSourceDefaultConfig}, {"cleanup.policy", kmsg.ConfigSourceDynamicTopicConfig}} {
		cfg := kmsg.NewDescribeConfigsResponseResourceConfig()
		cfg.Name, cfg.Value, cfg.Source = c.name, kmsg.StringPtr("v"), c.source
		rr.Configs = append(rr.Configs, cfg)
	}
	resp.Resources = append(resp.Resources, rr)

	apiCase{
		from: 0, to: 1, req: req,
		checkUp: func(t *testing.T, up kmsg.Request) {
			r := up.(*kmsg.DescribeConfigsRequest)
			if r.IncludeSynonyms || len(r.Resources) != 1 || r.Resources[0].ResourceName != "orders" || len(r.Resources[0].ConfigNames) != 2 {
				t.Fatalf("up: %+v", r)
			}
		},
		resp: resp,
		checkDown: func(t *testing.T, down kmsg.Response) {
			cs := down.(*kmsg.DescribeConfigsResponse).Resources[0].Configs
			if len(cs) != 2 || !cs[0].IsDefault || cs[1].IsDefault || *cs[1].Value != "v" {
				t.Fatalf("down: %+v, want IsDefault from Source DEFAULT_CONFIG", cs)
			}
		},
	}.run(t)
}

func TestLogDirsUpDown(t *testing.T) {
	alter := kmsg.NewPtrAlterReplicaLogDirsRequest()
	alter.Dirs = []kmsg.AlterReplicaLogDirsRequestDir{{Dir: "/data/2", Topics: []kmsg.AlterReplicaLogDirsRequestDirTopic{{Topic: "orders", Partitions: []int32{0}}}}}
	alterResp := kmsg.NewPtrAlterReplicaLogDirsResponse()
	alterResp.Topics = []kmsg.AlterReplicaLogDirsResponseTopic{{Topic: "orders", Partitions: []kmsg.AlterReplicaLogDirsResponseTopicPartition{{Partition: 0, ErrorCode: 57}}}}
	apiCase{
		from: 0, to: 1, req: alter,
		checkUp: func(t *testing.T, up kmsg.Request) {
			ds := up.(*kmsg.AlterReplicaLogDirsRequest).Dirs
			if len(ds) != 1 || ds[0].Dir != "/data/2" || ds[0].Topics[0].Topic != "orders" {
				t.Fatalf("up: %+v", ds)
			}
		},
		resp: alterResp,
		checkDown: func(t *testing.T, down kmsg.Response) {
			if p := down.(*kmsg.AlterReplicaLogDirsResponse).Topics[0].Partitions[0]; p.ErrorCode != 57 {
				t.Fatalf("down: %+v, want LOG_DIR_NOT_FOUND kept (1.0 knew it)", p)
			}
		},
	}.run(t)

	describe := kmsg.NewPtrDescribeLogDirsRequest()
	describeResp := kmsg.NewPtrDescribeLogDirsResponse()
	describeResp.ErrorCode = 31 // CLUSTER_AUTHORIZATION_FAILED, top level from v3
	describeResp.Dirs = []kmsg.DescribeLogDirsResponseDir{{Dir: "/data/1"}}
	apiCase{
		from: 0, to: 3, req: describe,
		checkUp: func(t *testing.T, up kmsg.Request) {
			if ts := up.(*kmsg.DescribeLogDirsRequest).Topics; ts != nil {
				t.Fatalf("up: topics %+v, want null (all)", ts)
			}
		},
		resp: describeResp,
		checkDown: func(t *testing.T, down kmsg.Response) {
			ds := down.(*kmsg.DescribeLogDirsResponse).Dirs
			if len(ds) != 1 || ds[0].Dir != "/data/1" || ds[0].ErrorCode != 31 {
				t.Fatalf("down: %+v, want the top-level error on the dir", ds)
			}
		},
	}.run(t)
}
