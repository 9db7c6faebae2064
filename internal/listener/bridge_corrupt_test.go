package listener_test

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// TestVersionBridgeCorruptPartition: a broker validates each partition of a
// Produce on its own and answers a corrupt one CORRUPT_MESSAGE, keeping the
// connection. A bridged Produce v2 whose partition 1 fails its CRC gets
// the same: partition 0's record lands, partition 1 is answered
// CORRUPT_MESSAGE, and the connection goes on; so does one whose every
// partition is corrupt.
func TestVersionBridgeCorruptPartition(t *testing.T) {
	log, logs := observed(t, zap.WarnLevel)
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kafka4Floors: true, Logger: log, Kfake: []kfake.Opt{kfake.SeedTopics(2, "t")}})
	conn, err := rawclient.Dial(env.Bootstrap())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	good := rawclient.MessageV1(nil, 0, 0, []byte("good"))
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 0xff // the value no longer matches the CRC
	produce := func(sets ...[]byte) map[int32]int16 {
		t.Helper()
		req := rawclient.LegacyProduceRequest("t", 0, sets[0])
		for i, set := range sets[1:] {
			req.Topics[0].Partitions = append(req.Topics[0].Partitions, kmsg.ProduceRequestTopicPartition{Partition: int32(i + 1), Records: set})
		}
		if _, err := conn.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := conn.Read()
		if err != nil {
			t.Fatalf("Produce v2 with a corrupt partition: %v (a broker answers it)", err)
		}
		codes := map[int32]int16{}
		for _, rt := range resp.Msg.(*kmsg.ProduceResponse).Topics {
			for _, p := range rt.Partitions {
				codes[p.Partition] = p.ErrorCode
			}
		}
		return codes
	}
	if codes := produce(good, bad); len(codes) != 2 || codes[0] != 0 || codes[1] != 2 {
		t.Fatalf("error codes by partition %v, want 0: 0, 1: 2 (CORRUPT_MESSAGE)", codes)
	}
	if codes := produce(bad, bad); len(codes) != 2 || codes[0] != 2 || codes[1] != 2 {
		t.Fatalf("every partition corrupt: error codes by partition %v, want CORRUPT_MESSAGE (2) for both", codes)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Bootstrap()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[int32]int64{0: 1, 1: 0} {
		if o, _ := ends.Lookup("t", p); o.Offset != want {
			t.Errorf("partition %d ends at %d, want %d", p, o.Offset, want)
		}
	}
	if n := env.Floors.Rejected(); n != 0 {
		t.Errorf("the broker rejected %d requests kproxy sent", n)
	}
	if n := logs.FilterMessageSnippet("answered CORRUPT_MESSAGE").Len(); n == 0 {
		t.Error("no warning names the client's corrupt records")
	}
}
