package bridge

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// A legacy client's message set, converted up, is a batch kfake (a broker
// that registers Produce v3+ only) appends; what kfake then serves to Fetch
// v4+, converted down, is what the client produced, at the offsets kfake
// gave. The legacy client's wrapper codec survives the trip.
func TestRecordsThroughBroker(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	// Kafka 3.0's versions name topics, not topic ids, in Produce and Fetch.
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.MaxVersions(kversion.V3_0_0()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	recs := testRecords(8)
	var want []testRecord
	specs := []legacySetSpec{
		{magic: 0}, {magic: 1, codec: compressionGzip}, {magic: 0, codec: compressionLz4, brokenLz4: true},
		{magic: 1, codec: compressionSnappy, xerial: true}, {magic: 1, codec: compressionLz4},
	}
	for i, spec := range specs {
		batch, err := UpMessageSet(legacySet(t, spec, recs), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 5000
		req.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch}}}}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
			t.Fatalf("set %d (%+v): kfake refuses the batch: %v", i, spec, err)
		}
		if p.BaseOffset != int64(i*len(recs)) {
			t.Fatalf("set %d at offset %d", i, p.BaseOffset)
		}
		want = append(want, downExpected(1, p.BaseOffset, upExpected(spec.magic, recs))...)
	}

	freq := kmsg.NewPtrFetchRequest()
	freq.MaxWaitMillis, freq.MaxBytes, freq.ReplicaID = 0, 1<<20, -1
	freq.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, PartitionMaxBytes: 1 << 20}}}}
	fresp, err := freq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	fp := fresp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(fp.ErrorCode); err != nil {
		t.Fatal(err)
	}
	for magic, set := range requireDown(t, fp.RecordBatches, want) {
		codecs := map[compression]int{}
		for _, m := range topMessages(t, set) {
			codecs[compression(m.attributes&compressionMask)]++
		}
		if codecs[compressionGzip] != 1 || codecs[compressionSnappy] != 1 || codecs[compressionLz4] != 2 || codecs[compressionNone] != len(recs) {
			t.Fatalf("magic %d: top-level messages by codec %v", magic, codecs)
		}
	}
}
