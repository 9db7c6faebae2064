package fault_test

import (
	"context"
	"errors"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// TestEverySeedReplaced is a rolling replacement of the whole cluster:
// nodes 3-5 join, then nodes 0-2 — every configured seed — leave, while an
// idempotent producer and a consumer group run through kproxy. kproxy must
// learn the new brokers by its own periodic fetch, keep /readyz ready,
// close the removed brokers' ports, and bootstrap a brand-new client
// through a current broker although no seed answers any more.
func TestEverySeedReplaced(t *testing.T) {
	t.Parallel()
	var conns loopback.ConnTracker
	s := newScenario(t, options{
		kfake:  []kfake.Opt{kfake.ListenFn(conns.Listen)},
		config: func(c *config.Config) { c.Upstream.MetadataMaxAge = 300 * time.Millisecond },
	})
	seeds := s.env.Cluster.ListenAddrs()
	oldPorts := s.env.Proxy.BrokerAddrs()
	s.start()
	for deadline := time.Now().Add(10 * time.Second); s.produced.Load() < records/10; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("producer stuck at %d records before the replacement", s.produced.Load())
		}
	}
	for id := int32(3); id <= 5; id++ {
		if _, _, err := s.env.Cluster.AddNode(id, 0); err != nil {
			t.Fatal(err)
		}
	}
	waitBrokers(t, s, []int32{0, 1, 2, 3, 4, 5})
	for id := int32(0); id <= 2; id++ {
		if err := s.env.Cluster.RemoveNode(id); err != nil {
			t.Fatal(err)
		}
	}
	for _, addr := range seeds {
		conns.Kill(addr) // the old broker processes are gone
	}
	s.verify()

	// kproxy's own view: the new brokers have ports, the old ones' ports
	// refuse connections, and it is ready.
	waitBrokers(t, s, []int32{3, 4, 5})
	if !s.env.Proxy.Ready() {
		t.Errorf("not ready after the replacement: %s", s.env.Proxy.NotReadyReason())
	}
	for id, addr := range oldPorts {
		c, err := rawclient.Dial(addr)
		if err != nil {
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Logf("broker %d port %s: %v (not refused: reused by a parallel test?)", id, addr, err)
			}
			continue
		}
		_ = c.Conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Send(kmsg.NewPtrApiVersionsRequest())
		if err == nil {
			_, err = c.Read()
		}
		c.Close()
		if err == nil {
			t.Errorf("broker %d left, but its port %s still serves", id, addr)
		}
	}

	// A new client: its bootstrap connection must reach a current broker.
	fresh, err := kgo.NewClient(kgo.SeedBrokers(s.env.Bootstrap()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fresh.ProduceSync(ctx, &kgo.Record{Value: []byte("after the replacement")}).FirstErr(); err != nil {
		t.Fatalf("a new client through the bootstrap port: %v", err)
	}
	dialFailed := testutil.ToFloat64(s.env.Metrics.SessionCloses.WithLabelValues("dial_failed"))
	t.Logf("sessions closed dial_failed during the replacement: %v", dialFailed)
}

// waitBrokers waits until kproxy serves exactly the brokers ids.
func waitBrokers(t *testing.T, s *scenario, ids []int32) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		addrs := s.env.Proxy.BrokerAddrs()
		got := make([]int32, 0, len(addrs))
		for id := range addrs {
			got = append(got, id)
		}
		slices.Sort(got)
		if slices.Equal(got, ids) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("kproxy serves brokers %v, want %v", got, ids)
		}
	}
}
