package listener_test

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/proxytest/kafka4"
	"github.com/kproxy/kproxy/internal/rawclient"
	"github.com/kproxy/kproxy/internal/sessioninfo"
)

// TestVersionBridgeThroughKproxy: requests of versions Kafka 4.0 removed
// (kfake refuses the removed Produce, Fetch and OffsetForLeaderEpoch
// versions, which makes kproxy treat it as a broker that enforces the
// floors) go up translated and come back in the client's version, on one
// connection whose ApiVersions answer listed them from v0.
func TestVersionBridgeThroughKproxy(t *testing.T) {
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")}})
	conn, err := rawclient.Dial(env.Bootstrap())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	read := func(req kmsg.Request) kmsg.Response {
		t.Helper()
		if _, err := conn.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := conn.Read()
		if err != nil {
			t.Fatalf("%s v%d through the bridge: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
		}
		return resp.Msg
	}

	versions := read(kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse)
	for _, k := range versions.ApiKeys {
		if (k.ApiKey == 0 || k.ApiKey == 1) && k.MinVersion != 0 {
			t.Errorf("ApiVersions lists %s from v%d, want v0 (bridged)", kmsg.NameForKey(k.ApiKey), k.MinVersion)
		}
	}

	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.SetVersion(0)
	commit.Group = "legacy"
	cp := kmsg.NewOffsetCommitRequestTopicPartition()
	cp.Partition, cp.Offset = 0, 42
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{cp}}}
	if c := read(commit).(*kmsg.OffsetCommitResponse); c.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("OffsetCommit v0: error %d", c.Topics[0].Partitions[0].ErrorCode)
	}
	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.SetVersion(0)
	fetch.Group = "legacy"
	fetch.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
	f := read(fetch).(*kmsg.OffsetFetchResponse)
	if p := f.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.Offset != 42 {
		t.Fatalf("OffsetFetch v0 after a v0 commit of 42: offset %d, error %d", p.Offset, p.ErrorCode)
	}

	offsets := kmsg.NewPtrListOffsetsRequest()
	offsets.SetVersion(0)
	op := kmsg.NewListOffsetsRequestTopicPartition()
	op.Partition, op.Timestamp, op.MaxNumOffsets = 0, -1, 1
	offsets.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "t", Partitions: []kmsg.ListOffsetsRequestTopicPartition{op}}}
	lo := read(offsets).(*kmsg.ListOffsetsResponse)
	if p := lo.Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.OldStyleOffsets) != 1 {
		t.Fatalf("ListOffsets v0: %+v", p)
	}

	for _, want := range [][3]string{{"OffsetCommit", "0", "2"}, {"OffsetFetch", "0", "1"}, {"ListOffsets", "0", "1"}} {
		if n := testutil.ToFloat64(env.Metrics.BridgedRequests.WithLabelValues(want[0], want[1], want[2])); n != 1 {
			t.Errorf("kproxy_bridged_requests_total{api=%q,from_version=%q,to_version=%q} = %v, want 1", want[0], want[1], want[2], n)
		}
	}
	sessions, _ := env.Proxy.Sessions(10)
	if len(sessions) != 1 || !strings.Contains(sessions[0].Bridged, "OffsetCommit v0→v2") {
		t.Fatalf("sessions view: %+v, want the session's bridged versions", sessions)
	}
	// The translations were charged to limits.max_buffered_bytes and are
	// paid back: the budget holds nothing once the client has gone.
	if peak := env.Proxy.BufferedPeakForTest(); peak == 0 {
		t.Error("the budget never held the bridged frames")
	}
	conn.Close()
	waitFor(t, "the budget back to 0", func() bool { return env.Proxy.BufferedForTest() == 0 })
}

// TestVersionBridgeOff: with compat.version_bridge off, kproxy forwards a
// removed version as sent, and lists what the broker lists.
func TestVersionBridgeOff(t *testing.T) {
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Config: func(c *config.Config) { c.Compat.VersionBridge = config.VersionBridgeOff }})
	conn, err := rawclient.Dial(env.Bootstrap())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Send(kmsg.NewPtrApiVersionsRequest()); err != nil {
		t.Fatal(err)
	}
	resp, err := conn.Read()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range resp.Msg.(*kmsg.ApiVersionsResponse).ApiKeys {
		if k.ApiKey == 0 && k.MinVersion == 0 {
			t.Errorf("ApiVersions with the bridge off lists Produce from v0; kfake lists it from v3")
		}
	}
}

// TestVersionBridgeOffsetsGoToCoordinator: a Kafka 0.8 client sends
// OffsetCommit v0 and OffsetFetch v0 to any broker (its offsets lived in
// ZooKeeper). Bridged up, they must reach the group's coordinator, or the
// broker answers NOT_COORDINATOR to a client that knows no coordinators.
func TestVersionBridgeOffsetsGoToCoordinator(t *testing.T) {
	env := proxytest.Start(t, proxytest.Options{Brokers: 3, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")}})
	boot, err := rawclient.Dial(env.Bootstrap())
	if err != nil {
		t.Fatal(err)
	}
	defer boot.Close()
	roundTrip := func(c *rawclient.Conn, req kmsg.Request) kmsg.Response {
		t.Helper()
		if _, err := c.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := c.Read()
		if err != nil {
			t.Fatalf("%s v%d: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
		}
		return resp.Msg
	}
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(0)
	brokers := roundTrip(boot, meta).(*kmsg.MetadataResponse).Brokers
	const group = "zookeeper-era"
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey = group
	coordinator := roundTrip(boot, fc).(*kmsg.FindCoordinatorResponse).NodeID
	var other *kmsg.MetadataResponseBroker
	for i := range brokers {
		if brokers[i].NodeID != coordinator {
			other = &brokers[i]
			break
		}
	}
	if other == nil {
		t.Fatalf("no broker besides the coordinator %d in %+v", coordinator, brokers)
	}
	conn, err := rawclient.Dial(net.JoinHostPort(other.Host, strconv.Itoa(int(other.Port))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.SetVersion(0)
	commit.Group = group
	cp := kmsg.NewOffsetCommitRequestTopicPartition()
	cp.Partition, cp.Offset = 0, 7
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{cp}}}
	if code := roundTrip(conn, commit).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("OffsetCommit v0 sent to broker %d, not the coordinator %d: error %d", other.NodeID, coordinator, code)
	}
	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.SetVersion(0)
	fetch.Group = group
	fetch.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
	if p := roundTrip(conn, fetch).(*kmsg.OffsetFetchResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.Offset != 7 {
		t.Fatalf("OffsetFetch v0 via broker %d: offset %d, error %d; want 7", other.NodeID, p.Offset, p.ErrorCode)
	}
	// Operators see the coordinator's lane beside the session's own.
	coordinatorAddr := env.Cluster.ListenAddrs()[coordinator]
	sessions, _ := env.Proxy.Sessions(10)
	var rows []sessioninfo.Lane
	for _, sess := range sessions {
		for _, l := range sess.Lanes {
			if strings.HasSuffix(l.Group, "(group coordinator)") {
				rows = append(rows, l)
			}
		}
	}
	if len(rows) != 1 || rows[0].Group != "coordination (group coordinator)" || rows[0].Upstream != coordinatorAddr || rows[0].State != sessioninfo.LaneIdle {
		t.Fatalf("coordinator lanes in the sessions view: %+v, want one idle \"coordination (group coordinator)\" lane to %s", rows, coordinatorAddr)
	}
}

// TestVersionBridgeLargeProduceSmallBudget: a legacy client's Produce as
// large as limits.max_buffered_bytes allows a frame to be is still
// bridged. The translation's reservation is held to the rule a frame is
// read by (a session's share, past the frame itself), so it never waits for
// more than the budget could give.
func TestVersionBridgeLargeProduceSmallBudget(t *testing.T) {
	env := proxytest.Start(t, proxytest.Options{Brokers: 1,
		Kfake:  []kfake.Opt{kfake.SeedTopics(1, "t"), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "8388608"})},
		Config: func(c *config.Config) { c.Limits.MaxBufferedBytes, c.Limits.MaxFrameBytes = 18<<20, 8<<20 }})
	conn, err := rawclient.Dial(env.Bootstrap())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	set := rawclient.MessageV1(nil, 0, 0, make([]byte, 5<<20))
	if _, err := conn.Send(rawclient.LegacyProduceRequest("t", 0, set)); err != nil {
		t.Fatal(err)
	}
	_ = conn.Conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := conn.Read()
	if err != nil {
		t.Fatalf("a 5 MiB Produce v2 in an 18 MiB budget: %v", err)
	}
	if p := resp.Msg.(*kmsg.ProduceResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 {
		t.Fatalf("Produce v2 answered error %d", p.ErrorCode)
	}
}

// TestVersionBridgeChargesDecompression: legacy Produces whose gzip
// wrappers are small on the wire but inflate to 24 MiB each are bridged
// with what they inflate to charged to limits.max_buffered_bytes, as every
// other byte kproxy holds for a client is; uncharged, a few small frames
// made kproxy hold many times the budget. Six at once in a 96 MiB budget
// all complete (a translation that waited for budget while holding part of
// what it needs would wait on the others for ever), and the budget holds
// at most itself and one translation past it.
func TestVersionBridgeChargesDecompression(t *testing.T) {
	const limit, maxFrame = 96 << 20, 32 << 20
	env := proxytest.Start(t, proxytest.Options{Brokers: 1,
		Kfake:  []kfake.Opt{kfake.SeedTopics(1, "t")},
		Config: func(c *config.Config) { c.Limits.MaxBufferedBytes, c.Limits.MaxFrameBytes = limit, maxFrame }})
	const inflated = 24 << 20
	set := rawclient.GzipMessageSet(inflated/(1<<20), 1<<20)
	if len(set) > 1<<20 {
		t.Fatalf("the wrapper takes %d bytes: not a small frame", len(set))
	}
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			conn, err := rawclient.Dial(env.Bootstrap())
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			if _, err := conn.Send(rawclient.LegacyProduceRequest("t", 0, set)); err != nil {
				t.Error(err)
				return
			}
			_ = conn.Conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			resp, err := conn.Read()
			if err != nil {
				t.Errorf("a Produce v2 inflating to 24 MiB: %v", err)
				return
			}
			if p := resp.Msg.(*kmsg.ProduceResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 {
				t.Errorf("Produce v2 answered error %d", p.ErrorCode)
			}
		})
	}
	wg.Wait()
	peak := env.Proxy.BufferedPeakForTest()
	if peak < inflated {
		t.Fatalf("the budget held at most %d bytes while %d-byte frames inflated to %d: the inflated records went uncharged", peak, len(set), inflated)
	}
	// One translation holds its input, its inflated records, the batch
	// they are written into and a buffer each is growing into: under four
	// frames.
	if most := int64(limit + 4*maxFrame); peak > most {
		t.Fatalf("the budget held %d bytes, past itself and one translation (%d): translations overdrew at once", peak, most)
	}
}

// TestVersionBridgeLearnsFloorsInARollingUpgrade: in a cluster whose
// broker 1 runs Kafka 4 (it lists 4.0's floors and closes the connection
// on Produce v2) while the ApiVersions answer kproxy reads at discovery
// (its first seed's) lists every version from 0, as a broker not yet
// upgraded does, a legacy producer's first Produce v2 to broker 1 goes as
// sent and its connection closes, as it would without kproxy; kproxy asks
// broker 1 what it accepts, learns, and the retry is bridged and lands,
// also after the brokers are fetched again.
func TestVersionBridgeLearnsFloorsInARollingUpgrade(t *testing.T) {
	log, logs := observed(t, zap.WarnLevel)
	env, produce, _ := halfUpgraded(t, log, true)
	if code, err := produce(); err == nil {
		t.Fatalf("the first Produce v2 to the Kafka 4 broker was answered (error %d): kproxy bridged it, or the test's broker does not refuse it", code)
	}
	if code, err := produce(); err != nil || code != 0 {
		t.Fatalf("the retried Produce v2: error code %d, %v; want it bridged and answered", code, err)
	}
	if n := logs.FilterMessageSnippet("kproxy bridges those versions from now on").Len(); n != 1 {
		t.Fatalf("%d warnings that kproxy learned the broker's floors, want 1", n)
	}
	if err := env.Proxy.DiscoverForTest(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code, err := produce(); err != nil || code != 0 {
		t.Fatalf("a Produce v2 after the brokers were fetched again: error code %d, %v; want it still bridged", code, err)
	}
}

// TestVersionBridgeLearnsNothingFromAnOldBroker: a broker that lists every
// version from 0 and closes a connection with a Produce v2 in flight (a
// 3.x broker restarting, say) teaches kproxy nothing: the next Produce v2
// goes as sent, unconverted.
func TestVersionBridgeLearnsNothingFromAnOldBroker(t *testing.T) {
	log, logs := observed(t, zap.WarnLevel)
	_, produce, received := halfUpgraded(t, log, false)
	for range 2 {
		if code, err := produce(); err == nil {
			t.Fatalf("a Produce v2 to the broker that closes on it was answered (error %d)", code)
		}
	}
	if n := received(); n != 2 {
		t.Fatalf("the broker received %d Produce v2, want 2: the second was bridged", n)
	}
	if n := logs.FilterMessageSnippet("bridges those versions from now on").Len(); n != 0 {
		t.Fatalf("kproxy learned floors from a broker that lists none")
	}
}

// TestVersionBridgeLearnsFloorsFromAnAcks0Produce: a Kafka 4 broker closes
// the connection over an acks=0 Produce v2, which is owed no answer. kproxy
// closes the producer's connection, as the broker would have, and asks the
// broker what it accepts; the records the producer sends on the
// connection it dials again are bridged and land, rather than lost one
// connection at a time until kproxy's seed is upgraded.
func TestVersionBridgeLearnsFloorsFromAnAcks0Produce(t *testing.T) {
	log, logs := observed(t, zap.WarnLevel)
	env, _, received := halfUpgraded(t, log, true)
	produce := func(value string) net.Conn {
		conn, err := rawclient.Dial(env.Proxy.BrokerAddrs()[1])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		req := rawclient.LegacyProduceRequest("t", 0, rawclient.MessageV1(nil, 0, 0, []byte(value)))
		req.Acks = 0
		if _, err := conn.Send(req); err != nil {
			t.Fatal(err)
		}
		return conn.Conn
	}
	expectClosed(t, produce("lost"))
	produce("kept")
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Bootstrap()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var end int64
	waitFor(t, "the second acks=0 Produce v2 to land", func() bool {
		ends, err := kadm.NewClient(cl).ListEndOffsets(t.Context(), "t")
		if o, ok := ends.Lookup("t", 0); err == nil && ok && o.Err == nil {
			end = o.Offset
		}
		return end == 1
	})
	if n := received(); n != 1 {
		t.Fatalf("the Kafka 4 broker received %d Produce v2, want 1: the second went unbridged", n)
	}
	if n := logs.FilterMessageSnippet("kproxy bridges those versions from now on").Len(); n != 1 {
		t.Fatalf("%d warnings that kproxy learned the broker's floors, want 1", n)
	}
}

// halfUpgraded runs kproxy in front of two brokers whose ApiVersions
// answers list every version from 0 (broker 1's lists Kafka 4.0's floors
// when upgraded) and of which broker 1, the leader of t/0, closes the
// connection on the versions 4.0 removed. produce sends a Produce v2 to
// t/0 through kproxy on a connection of its own; received counts the
// Produce v2 broker 1 got.
func halfUpgraded(t *testing.T, log *zap.Logger, upgraded bool) (env *proxytest.Env, produce func() (int16, error), received func() int) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.MoveTopicPartition("t", 0, 1); err != nil {
		t.Fatal(err)
	}
	direct, err := rawclient.Dial(c.ListenAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Send(kmsg.NewPtrApiVersionsRequest()); err != nil {
		t.Fatal(err)
	}
	answer, err := direct.Read()
	direct.Close()
	if err != nil {
		t.Fatal(err)
	}
	old := answer.Msg.(*kmsg.ApiVersionsResponse).ApiKeys
	current := slices.Clone(old)
	for i := range old {
		old[i].MinVersion = 0
		current[i].MinVersion = max(current[i].MinVersion, kafka4.Floor(current[i].ApiKey))
	}
	c.ControlKey(int16(kmsg.ApiVersions), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.Version, resp.ApiKeys = req.GetVersion(), old
		if upgraded && c.CurrentNode() == 1 {
			resp.ApiKeys = current
		}
		return resp, nil, true
	})
	var produceV2 atomic.Int32
	c.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if c.CurrentNode() != 1 || req.GetVersion() >= kafka4.Floor(req.Key()) {
			return nil, nil, false
		}
		if req.Key() == int16(kmsg.Produce) {
			produceV2.Add(1)
		}
		return nil, fmt.Errorf("%s v%d was removed in Kafka 4.0", kmsg.NameForKey(req.Key()), req.GetVersion()), true
	})
	env = proxytest.StartProxy(t, loopback.Config(c.ListenAddrs()), log)
	produce = func() (int16, error) {
		conn, err := rawclient.Dial(env.Proxy.BrokerAddrs()[1])
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		if _, err := conn.Send(rawclient.LegacyProduceRequest("t", 0, rawclient.MessageV1(nil, 0, 0, []byte("v")))); err != nil {
			return 0, err
		}
		_ = conn.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := conn.Read()
		if err != nil {
			return 0, err
		}
		return resp.Msg.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode, nil
	}
	return env, produce, func() int { return int(produceV2.Load()) }
}

// TestVersionBridgeChargesFetchDecompression: a legacy consumer's Fetch v3
// of a gzip batch that inflates to 24 MiB is converted down with what it
// inflates charged to limits.max_buffered_bytes, as for a Produce.
func TestVersionBridgeChargesFetchDecompression(t *testing.T) {
	const inflated = 24 << 20
	env := proxytest.Start(t, proxytest.Options{Brokers: 1,
		Kfake:  []kfake.Opt{kfake.SeedTopics(1, "t")},
		Config: func(c *config.Config) { c.Limits.MaxBufferedBytes, c.Limits.MaxFrameBytes = 96<<20, 32<<20 }})
	producer, err := kgo.NewClient(kgo.SeedBrokers(env.Cluster.ListenAddrs()...), kgo.DefaultProduceTopic("t"),
		kgo.ProducerBatchCompression(kgo.GzipCompression()), kgo.ProducerBatchMaxBytes(32<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	if err := producer.ProduceSync(t.Context(), &kgo.Record{Value: make([]byte, inflated)}).FirstErr(); err != nil {
		t.Fatalf("produce the batch directly: %v", err)
	}
	conn, err := rawclient.Dial(env.Bootstrap())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fetch := rawclient.FetchRequest("t", 0, 0)
	fetch.SetVersion(3)
	fetch.MaxBytes, fetch.Topics[0].Partitions[0].PartitionMaxBytes = 32<<20, 32<<20
	if _, err := conn.Send(fetch); err != nil {
		t.Fatal(err)
	}
	_ = conn.Conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := conn.Read()
	if err != nil {
		t.Fatalf("Fetch v3 of a batch inflating to 24 MiB: %v", err)
	}
	p := resp.Msg.(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
		t.Fatalf("Fetch v3 answered error %d with %d bytes of records", p.ErrorCode, len(p.RecordBatches))
	}
	if peak := env.Proxy.BufferedPeakForTest(); peak < inflated {
		t.Fatalf("the budget held at most %d bytes while a Fetch answer inflated to %d: the inflated records went uncharged", peak, inflated)
	}
}
