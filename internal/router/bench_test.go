package router

import (
	"encoding/binary"
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
// (acks=0 produces hold no slot), from a flexible v9 Produce.
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
		h, _ := ParseRequestHeader(body)
		if acks, err := p.ProduceAcks(body, h); err != nil || acks != -1 {
			b.Fatalf("acks %d, %v", acks, err)
		}
	}
}
