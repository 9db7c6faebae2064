package router

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func benchRewrite(b *testing.B, key, version int16, resp kmsg.Response, wantRewrite bool) {
	p := NewProtocol()
	rw := NewRewriter(p)
	frame := encodeFrame(p, key, version, resp)
	if _, rewrote, err := rw.Rewrite(frame, key, version, benchMap{}); err != nil || rewrote != wantRewrite {
		b.Fatalf("rewrote=%v err=%v", rewrote, err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		_, _, _ = rw.Rewrite(frame, key, version, benchMap{})
	}
}

// BenchmarkMetadataRewrite: a mid-sized cluster answer, 6 brokers and 50
// topics of 6 partitions.
func BenchmarkMetadataRewrite(b *testing.B) {
	r := kmsg.NewPtrMetadataResponse()
	for n := range int32(6) {
		br := kmsg.NewMetadataResponseBroker()
		br.NodeID = n
		br.Host, br.Port = upstream(n)
		r.Brokers = append(r.Brokers, br)
	}
	for i := range 50 {
		t := kmsg.NewMetadataResponseTopic()
		t.Topic = strp("topic-" + strconv.Itoa(i))
		for part := range int32(6) {
			pt := kmsg.NewMetadataResponseTopicPartition()
			pt.Partition, pt.Leader = part, part
			pt.Replicas = []int32{part, (part + 1) % 6, (part + 2) % 6}
			pt.ISR = pt.Replicas
			t.Partitions = append(t.Partitions, pt)
		}
		r.Topics = append(r.Topics, t)
	}
	benchRewrite(b, KeyMetadata, 12, r, true)
}

// BenchmarkMetadataPartitions: an all-topics answer from 3 brokers with
// one topic of n partitions (replication factor 3), rewritten by the
// splice (what the proxy does) and by a full decode and encode (the
// reference it is held to). alloc-B/answer-B is bytes allocated per byte
// of answer.
func BenchmarkMetadataPartitions(b *testing.B) {
	for _, n := range []int{1000, 20000, 100000} {
		r := metadataPartitions(3, n)
		for _, path := range []struct {
			name string
			rw   func(*Protocol) *Rewriter
		}{{"splice", NewRewriter}, {"decode", decodingRewriter}} {
			b.Run(fmt.Sprintf("partitions=%d/%s", n, path.name), func(b *testing.B) {
				p := NewProtocol()
				rw := path.rw(p)
				frame := encodeFrame(p, KeyMetadata, 12, r)
				b.SetBytes(int64(len(frame)))
				b.ReportAllocs()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				before := ms.TotalAlloc
				for b.Loop() {
					if _, rewrote, err := rw.Rewrite(frame, KeyMetadata, 12, benchMap{}); err != nil || !rewrote {
						b.Fatalf("rewrote=%v err=%v", rewrote, err)
					}
				}
				runtime.ReadMemStats(&ms)
				b.ReportMetric(float64(ms.TotalAlloc-before)/float64(b.N)/float64(len(frame)), "alloc-B/answer-B")
			})
		}
	}
}

// metadataPartitions is a Metadata answer naming brokers upstream and one
// topic of n partitions spread over them.
func metadataPartitions(brokers int32, n int) *kmsg.MetadataResponse {
	r := kmsg.NewPtrMetadataResponse()
	r.ClusterID = strp("cluster-1")
	for id := range brokers {
		br := kmsg.NewMetadataResponseBroker()
		br.NodeID = id
		br.Host, br.Port = upstream(id)
		r.Brokers = append(r.Brokers, br)
	}
	t := kmsg.NewMetadataResponseTopic()
	t.Topic = strp("big")
	t.TopicID = [16]byte{1}
	for i := range int32(n) {
		pt := kmsg.NewMetadataResponseTopicPartition()
		pt.Partition, pt.Leader, pt.LeaderEpoch = i, i%brokers, 3
		pt.Replicas = []int32{i % brokers, (i + 1) % brokers, (i + 2) % brokers}
		pt.ISR = pt.Replicas
		t.Partitions = append(t.Partitions, pt)
	}
	r.Topics = append(r.Topics, t)
	return r
}

func BenchmarkFindCoordinatorRewrite(b *testing.B) {
	r := kmsg.NewPtrFindCoordinatorResponse()
	c := kmsg.NewFindCoordinatorResponseCoordinator()
	c.Key, c.NodeID = "my-group", 2
	c.Host, c.Port = upstream(2)
	r.Coordinators = append(r.Coordinators, c)
	benchRewrite(b, KeyFindCoordinator, 6, r, true)
}

// BenchmarkFetchNodeEndpointsCheck is the hot path: a ~1 MiB fetch with no
// NodeEndpoints must be walked and forwarded without an allocation.
func BenchmarkFetchNodeEndpointsCheck(b *testing.B) {
	benchRewrite(b, KeyFetch, 18, fetchResponse(nil, 1<<20), false)
}

// BenchmarkApiVersionsCap: a broker answer listing every API kmsg knows at
// a version above the proxy's, so every decoded API gets capped.
func BenchmarkApiVersionsCap(b *testing.B) {
	p := NewProtocol()
	var ranges []apiRange
	for k := range int16(keySpan) {
		if p.Known(k) {
			ranges = append(ranges, apiRange{k, 0, p.MaxVersion(k) + 1})
		}
	}
	benchRewrite(b, KeyApiVersions, 4, apiVersionsResponse(0, ranges...), true)
}

// BenchmarkProduceAcks: the one field the proxy reads from a request body
// (acks=0 produces hold no slot), from a flexible v9 Produce, with the
// header parse every request pays.
func BenchmarkProduceAcks(b *testing.B) {
	p := NewProtocol()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.TransactionID = strp("txn")
	req.Acks = -1
	t := kmsg.NewProduceRequestTopic()
	t.Topic = "orders"
	t.Partitions = append(t.Partitions, kmsg.NewProduceRequestTopicPartition())
	req.Topics = append(req.Topics, t)
	frame := binary.BigEndian.AppendUint16(make([]byte, 4), uint16(KeyProduce))
	frame = binary.BigEndian.AppendUint16(frame, 9)
	frame = binary.BigEndian.AppendUint32(frame, testCorr)
	frame = binary.BigEndian.AppendUint16(frame, 6)
	frame = append(append(frame, "client"...), 0) // client id, header tags
	frame = req.AppendTo(frame)
	body := frame[4:]
	b.ReportAllocs()
	for b.Loop() {
		q, _ := p.ParseRequest(body)
		if acks, err := ProduceAcks(&q); err != nil || acks != -1 {
			b.Fatalf("acks %d, %v", acks, err)
		}
	}
}
