package listener_test

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/internal/proxytest"
)

// proxyPorts are every port the proxy listens on for clients.
func proxyPorts(env *proxytest.Env) map[string]bool {
	ports := map[string]bool{}
	for _, addr := range env.Proxy.BrokerAddrs() {
		_, p, _ := net.SplitHostPort(addr)
		ports[p] = true
	}
	return ports
}

func TestKgoIdempotentProduceConsumeGroup(t *testing.T) {
	env := proxytest.Start(t, proxytest.Options{Kfake: []kfake.Opt{kfake.SeedTopics(6, "orders")}})
	ctx := ctxTimeout(t, 90*time.Second)
	const n = 10000

	producer := newClient(t, env.Bootstrap(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("orders"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var produceErrs []error
	for i := range n {
		wg.Add(1)
		producer.Produce(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				produceErrs = append(produceErrs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(produceErrs) > 0 {
		t.Fatalf("%d produce errors, first: %v", len(produceErrs), produceErrs[0])
	}

	consumer := newClient(t, env.Bootstrap(),
		kgo.ConsumeTopics("orders"), kgo.ConsumerGroup("g1"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	seen := consumeExactly(t, ctx, consumer, n)
	for i := range n {
		if !seen[strconv.Itoa(i)] {
			t.Fatalf("record %d missing", i)
		}
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}

	adm := kadm.NewClient(newClient(t, env.Bootstrap()))
	offsets, err := adm.FetchOffsets(ctx, "g1")
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	var committed int64
	offsets.Each(func(o kadm.OffsetResponse) { committed += o.At })
	if committed != n {
		t.Fatalf("committed offsets sum to %d, want %d", committed, n)
	}
}

func TestKgoTransaction(t *testing.T) {
	env := proxytest.Start(t, proxytest.Options{Kfake: []kfake.Opt{kfake.SeedTopics(3, "in", "out")}})
	ctx := ctxTimeout(t, 60*time.Second)

	seed := newClient(t, env.Bootstrap(), kgo.DefaultProduceTopic("in"))
	for i := range 10 {
		if err := seed.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(env.Bootstrap()), kgo.TransactionalID("tx-1"),
		kgo.ConsumeTopics("in"), kgo.ConsumerGroup("tx-group"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DefaultProduceTopic("out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)
	var got int
	for got < 10 {
		fs := sess.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of 10", got)
		}
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			sess.Produce(ctx, &kgo.Record{Value: append([]byte("out-"), r.Value...)}, nil)
		})
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil || !committed {
			t.Fatalf("end txn: committed=%v err=%v", committed, err)
		}
	}

	reader := newClient(t, env.Bootstrap(), kgo.ConsumeTopics("out"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	seen := consumeExactly(t, ctx, reader, 10)
	if !seen["out-0"] || !seen["out-9"] {
		t.Fatalf("transactional output incomplete: %v", seen)
	}
}

// TestKgoAddressesAreProxy checks every broker address a client learns.
func TestKgoAddressesAreProxy(t *testing.T) {
	env := proxytest.Start(t, proxytest.Options{Kfake: []kfake.Opt{kfake.SeedTopics(3, "t")}})
	ctx := ctxTimeout(t, 30*time.Second)
	cl := newClient(t, env.Bootstrap())
	upstream := map[string]bool{}
	for _, a := range env.Cluster.ListenAddrs() {
		upstream[a] = true
	}
	ports := proxyPorts(env)
	if len(ports) != 3 {
		t.Fatalf("proxy listens for %d brokers, want 3", len(ports))
	}
	check := func(what, host string, port int32) {
		t.Helper()
		addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
		if upstream[addr] || host != "127.0.0.1" || !ports[strconv.Itoa(int(port))] {
			t.Errorf("%s: %s is not a proxy address (proxy ports %v)", what, addr, ports)
		}
	}

	meta := kmsg.NewPtrMetadataRequest()
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range mresp.Brokers {
		check(fmt.Sprintf("Metadata broker %d", b.NodeID), b.Host, b.Port)
	}

	for _, v := range []int16{3, 4} {
		fc := kmsg.NewPtrFindCoordinatorRequest()
		fc.SetVersion(v)
		fc.CoordinatorKey, fc.CoordinatorKeys = "g", []string{"g"}
		resp, err := cl.Request(ctx, fc)
		if err != nil {
			t.Fatal(err)
		}
		fr := resp.(*kmsg.FindCoordinatorResponse)
		if v < 4 {
			check("FindCoordinator v3", fr.Host, fr.Port)
		} else {
			if len(fr.Coordinators) != 1 {
				t.Fatalf("FindCoordinator v4: %d coordinators", len(fr.Coordinators))
			}
			check("FindCoordinator v4", fr.Coordinators[0].Host, fr.Coordinators[0].Port)
		}
	}

	dc := kmsg.NewPtrDescribeClusterRequest()
	dresp, err := dc.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(dresp.Brokers) != 3 {
		t.Fatalf("DescribeCluster: %d brokers", len(dresp.Brokers))
	}
	for _, b := range dresp.Brokers {
		check(fmt.Sprintf("DescribeCluster broker %d", b.NodeID), b.Host, b.Port)
	}
	if s := strings.Join(env.Cluster.ListenAddrs(), ","); strings.Contains(fmt.Sprint(mresp.Brokers, dresp.Brokers), s) {
		t.Fatal("upstream address leaked")
	}
}
