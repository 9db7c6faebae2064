// Package legacy runs clients held to Kafka 0.9/0.10 protocol versions
// against a broker that enforces Kafka 4.0's floors (KIP-896, KIP-724):
// straight at it they fail, the broker closing the connection on their
// requests; through kproxy's version bridge they produce, consume in a
// group, commit, and a restarted consumer resumes after the commit.
package legacy_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	"go.uber.org/goleak"

	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/proxytest/kafka4"
)

// sarama's metrics start a goroutine per process that never ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"))
}

const (
	topic      = "legacy"
	partitions = 3
	group      = "legacy-group"
	records    = 50 // produced before the first consumer
	more       = 20 // produced after its commit, all the restarted consumer may get

	// commitTimeout bounds a consumer's last commit, which runs even when
	// the consumer's own time is up.
	commitTimeout = 5 * time.Second
	// directTimeout bounds each half of a direct run, which is expected
	// to get nothing through.
	directTimeout = 2 * time.Second
)

// legacyClient is one client held to old protocol versions.
type legacyClient struct {
	name string
	// produce sends values to topic and reports how many were
	// acknowledged; it gives up when ctx ends.
	produce func(ctx context.Context, bootstrap []string, values []string) (int, error)
	// consume joins group, reads until want values arrived or ctx ends,
	// commits what it read, and closes.
	consume func(ctx context.Context, bootstrap []string, want int) ([]string, error)
	// groupCommittedFirst: the group must have committed offsets before
	// the client first asks for them (see sarama 0.9).
	groupCommittedFirst bool
}

func values(from, n int) []string {
	vs := make([]string, n)
	for i := range vs {
		vs[i] = "rec-" + strconv.Itoa(from+i)
	}
	return vs
}

func legacyClients() []legacyClient {
	return []legacyClient{
		kgoClient("kgo-0.10.1-gzip", kgoV0101, kgo.GzipCompression()),
		kgoClient("kgo-0.10.1-snappy", kgoV0101, kgo.SnappyCompression()),
		kgoClient("kgo-0.10.1-lz4", kgoV0101, kgo.Lz4Compression()),
		kgoClient("kgo-0.9.0", kgoV090, kgo.NoCompression()),
		saramaGroupClient("sarama-0.10.2-snappy", sarama.V0_10_2_0, sarama.CompressionSnappy),
		saramaPartitionClient("sarama-0.9.0-gzip", sarama.V0_9_0_0, sarama.CompressionGZIP),
		saramaPartitionClient("sarama-0.8.2-snappy", sarama.V0_8_2_0, sarama.CompressionSnappy),
	}
}

// TestHarnessThroughKproxy runs the through-kproxy half with the same
// clients at current versions, which need no bridge: when a legacy client
// fails there and these pass, it is the bridge's doing, not the harness's.
func TestHarnessThroughKproxy(t *testing.T) {
	for _, c := range []legacyClient{
		kgoClient("kgo-current-lz4", kversion.Stable, kgo.Lz4Compression()),
		saramaGroupClient("sarama-current-group", sarama.V3_0_0_0, sarama.CompressionNone),
		saramaPartitionClient("sarama-current-partitions", sarama.V3_0_0_0, sarama.CompressionNone),
	} {
		t.Run(c.name, func(t *testing.T) { throughKproxy(t, c) })
	}
}

func TestLegacyClients(t *testing.T) {
	for _, c := range legacyClients() {
		t.Run(c.name, func(t *testing.T) {
			t.Run("direct", func(t *testing.T) { direct(t, c) })
			t.Run("kproxy", func(t *testing.T) { throughKproxy(t, c) })
		})
	}
}

func floorsEnv(t *testing.T) *proxytest.Env {
	t.Helper()
	return proxytest.Start(t, proxytest.Options{
		Brokers:      1,
		Kafka4Floors: true,
		Kfake: []kfake.Opt{
			kfake.SeedTopics(partitions, topic),
			kfake.GroupMinSessionTimeout(100 * time.Millisecond),
		},
	})
}

// direct shows the failure kproxy's bridge exists for, with the client
// alone against the broker: the broker closes the connection on the
// client's produce and consume requests, or the client, seeing the
// minimums the broker lists, gives up without sending them; nothing gets
// through either way.
func direct(t *testing.T, c legacyClient) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	seeds := cluster.ListenAddrs()
	// Records a current client can write are there to read, and the floors
	// come after them, so that what they count is the old client's alone.
	seed(t, seeds, values(0, records))
	if c.groupCommittedFirst {
		commitStart(t, seeds)
	}
	floors, err := kafka4.Floors(cluster)
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), directTimeout)
	produced, err := c.produce(ctx, seeds, values(records, records))
	cancel()
	if produced != 0 {
		t.Errorf("produced %d straight to a Kafka 4 broker, want 0", produced)
	}
	if rejected := floors.RejectedRequests(); rejected[kafka4.Request{Key: int16(kmsg.Produce), Version: produceVersion(floors)}] == 0 {
		t.Errorf("the broker closed the connection on no Produce: %s", floors.Summary())
	}
	t.Logf("producer: %d produced in %s, %v; the broker received %s", produced, time.Since(start).Round(time.Millisecond), err, floors.Summary())

	rejectedBefore := floors.Rejected()
	start = time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), directTimeout)
	got, err := c.consume(ctx, seeds, records)
	cancel()
	if len(got) != 0 {
		t.Errorf("consumed %d records straight from a Kafka 4 broker, want 0", len(got))
	}
	if err == nil {
		t.Error("the consumer reported no error")
	}
	rejected := floors.Rejected() - rejectedBefore
	t.Logf("consumer: %d consumed in %s, %v; the broker rejected %d of its requests; in all it received %s", len(got), time.Since(start).Round(time.Millisecond), err, rejected, floors.Summary())
}

// produceVersion is the version of the Produce requests the broker got,
// the highest if there were several.
func produceVersion(b *kafka4.Broker) int16 {
	v := int16(-1)
	for r := range b.Requests() {
		if r.Key == int16(kmsg.Produce) {
			v = max(v, r.Version)
		}
	}
	return v
}

// throughKproxy is the whole life of a legacy client through the bridge:
// produce, consume everything in a group and commit, then a restarted
// consumer gets exactly what was produced after the commit.
func throughKproxy(t *testing.T, c legacyClient) {
	env := floorsEnv(t)
	seeds := []string{env.Bootstrap()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	first := values(0, records)
	if n, err := c.produce(ctx, seeds, first); n != records || err != nil {
		t.Fatalf("produced %d of %d: %v", n, records, err)
	}
	if c.groupCommittedFirst {
		commitStart(t, env.Cluster.ListenAddrs())
	}
	got, err := c.consume(ctx, seeds, records)
	if err != nil {
		t.Fatalf("first consumer: %v", err)
	}
	assertExactly(t, "first consumer", got, first)

	later := values(records, more)
	if n, err := c.produce(ctx, seeds, later); n != more || err != nil {
		t.Fatalf("produced %d of %d after the commit: %v", n, more, err)
	}
	got, err = c.consume(ctx, seeds, more)
	if err != nil {
		t.Fatalf("restarted consumer: %v", err)
	}
	assertExactly(t, "restarted consumer", got, later)

	if n := env.Floors.Rejected(); n != 0 {
		t.Errorf("the broker rejected %d requests kproxy sent: %s", n, env.Floors.Summary())
	}
	for r := range env.Floors.Requests() {
		if r.Version < kafka4.Floor(r.Key) {
			t.Errorf("kproxy sent %s, below Kafka 4.0's floor", r)
		}
	}
	t.Logf("the broker received %s", env.Floors.Summary())
}

func assertExactly(t *testing.T, who string, got, want []string) {
	t.Helper()
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s got %d values %v, want exactly %d: %v", who, len(g), g, len(w), w)
	}
}

// commitStart commits offset 0 on every partition for the group, straight
// to the broker with a modern client. kfake answers OffsetFetch for a group
// it does not know with GROUP_ID_NOT_FOUND and no partitions, where Kafka
// answers offset -1 for each partition asked about; sarama's OffsetManager
// takes the missing partitions for an incomplete answer and gives up. A
// group that committed 0 starts at the beginning, as one with no offsets
// does with OffsetOldest.
func commitStart(t *testing.T, seeds []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var os kadm.Offsets
	for p := range int32(partitions) {
		os.Add(kadm.Offset{Topic: topic, Partition: p, At: 0, LeaderEpoch: -1})
	}
	resp, err := kadm.NewClient(cl).CommitOffsets(ctx, group, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("committing the group's start: %v", err)
	}
}

// seed writes values with a modern client, straight to the broker.
func seed(t *testing.T, seeds []string, vs []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, len(vs))
	for i, v := range vs {
		recs[i] = &kgo.Record{Key: []byte(v), Value: []byte(v)}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("seeding %d records with a modern client: %v", len(vs), err)
	}
}
