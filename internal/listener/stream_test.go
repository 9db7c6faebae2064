package listener_test

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// TestLargeAnswersStreamIntact: a Fetch answer of several hundred KiB that
// cannot carry NodeEndpoints (v11) is streamed to the client as it arrives,
// and arrives byte for byte, in order with the small answer behind it; a
// v16+ answer (which may need a rewrite) is buffered, and arrives intact too.
func TestLargeAnswersStreamIntact(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Kfake: []kfake.Opt{kfake.SeedTopics(1, "big")}})
	value := make([]byte, 600<<10)
	_, _ = rand.Read(value)
	producer := newClient(t, env.Bootstrap(), kgo.ProducerBatchMaxBytes(2<<20), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err := producer.ProduceSync(ctxTimeout(t, 20*time.Second), &kgo.Record{Topic: "big", Value: value}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	_, addr := leaderAddrs(t, env, "big")
	for _, tc := range []struct {
		version  int16
		streamed float64
	}{{11, 1}, {16, 0}} {
		before := testutil.ToFloat64(env.Metrics.StreamedResponses)
		c, err := rawclient.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Conn.SetDeadline(time.Now().Add(20 * time.Second))
		fetch := rawclient.FetchRequest("big", 0, 100*time.Millisecond)
		fetch.SetVersion(tc.version)
		if tc.version >= 13 {
			fetch.Topics[0].TopicID = topicID(t, env, "big")
		}
		fetch.Topics[0].Partitions[0].PartitionMaxBytes = 4 << 20
		fetch.MaxBytes = 4 << 20
		fetchCorr, _ := c.Send(fetch)
		metaCorr, _ := c.Send(kmsg.NewPtrApiVersionsRequest())
		first, err := c.Read()
		if err != nil {
			t.Fatalf("v%d: %v", tc.version, err)
		}
		second, err := c.Read()
		if err != nil {
			t.Fatalf("v%d: %v", tc.version, err)
		}
		c.Close()
		if first.CorrelationID != fetchCorr || second.CorrelationID != metaCorr {
			t.Fatalf("v%d: answers out of order", tc.version)
		}
		var got []byte
		fr := first.Msg.(*kmsg.FetchResponse)
		p := fr.Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			t.Fatalf("v%d: fetch error %d", tc.version, p.ErrorCode)
		}
		recs, err := recordsOf(p.RecordBatches)
		if err != nil {
			t.Fatalf("v%d: %v", tc.version, err)
		}
		if len(recs) == 1 {
			got = recs[0]
		}
		if !bytes.Equal(got, value) {
			t.Fatalf("v%d: record of %d bytes came back as %d bytes, or changed", tc.version, len(value), len(got))
		}
		if d := testutil.ToFloat64(env.Metrics.StreamedResponses) - before; d != tc.streamed {
			t.Fatalf("v%d: %v answers streamed, want %v", tc.version, d, tc.streamed)
		}
	}
}

func topicID(t *testing.T, env *proxytest.Env, topic string) [16]byte {
	t.Helper()
	cl := newClient(t, env.Bootstrap())
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctxTimeout(t, 10*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].TopicID
}

// recordsOf decodes the record values of v2 batches.
func recordsOf(raw []byte) ([][]byte, error) {
	var out [][]byte
	for len(raw) > 0 {
		var b kmsg.RecordBatch
		if err := b.ReadFrom(raw); err != nil {
			return nil, err
		}
		raw = raw[12+int(b.Length):]
		recs := b.Records
		for range b.NumRecords {
			var r kmsg.Record
			if err := r.ReadFrom(recs); err != nil {
				return nil, err
			}
			out = append(out, r.Value)
			recs = recs[len(r.AppendTo(nil)):]
		}
	}
	return out, nil
}
