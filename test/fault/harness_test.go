// Package fault runs real clients through kproxy while kfake misbehaves:
// connections dropped mid-request, brokers leaving and returning, leaders
// and coordinators moving, a slow broker, the proxy restarted. After each,
// an idempotent producer's records must all be there exactly once and no
// committed consumer offset may be lost or go backwards.
package fault_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/proxytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	topic      = "fault"
	partitions = 6
	group      = "fault-group"
	records    = 2000
)

// scenario is one fault run: the cluster, the proxy in front, the workload.
type scenario struct {
	t   *testing.T
	env *proxytest.Env
	ctx context.Context

	produced, produceErrs atomic.Int64
	produceDone           chan struct{}
	consumeDone           chan struct{}
	commitErrs            atomic.Int64

	mu       sync.Mutex
	seen     map[string]int // consumer group: value → times seen
	lastErr  error
	backward []string // committed offsets that went backwards
}

// options shape the cluster and proxy of a scenario.
type options struct {
	brokers int
	kfake   []kfake.Opt
	config  func(*config.Config)
}

func newScenario(t *testing.T, o options) *scenario {
	t.Helper()
	if o.brokers == 0 {
		o.brokers = 3
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	env := proxytest.Start(t, proxytest.Options{
		Brokers: o.brokers,
		Kfake:   append([]kfake.Opt{kfake.SeedTopics(partitions, topic)}, o.kfake...),
		Config: func(c *config.Config) {
			c.Upstream.DialBackoffMax = 500 * time.Millisecond
			if o.config != nil {
				o.config(c)
			}
		},
	})
	return &scenario{t: t, env: env, ctx: ctx, seen: map[string]int{},
		produceDone: make(chan struct{}), consumeDone: make(chan struct{})}
}

func (s *scenario) client(opts ...kgo.Opt) *kgo.Client {
	s.t.Helper()
	seeds := []string{s.env.Bootstrap()}
	if os.Getenv("FAULT_DIRECT") != "" {
		seeds = s.env.Cluster.ListenAddrs()
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
	}, opts...)...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(cl.Close)
	return cl
}

// direct is a client of the cluster itself, bypassing the proxy: the
// referee that reads what really landed.
func (s *scenario) direct(opts ...kgo.Opt) *kgo.Client {
	s.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.env.Cluster.ListenAddrs()...)}, opts...)...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(cl.Close)
	return cl
}

// start runs an idempotent producer (records values 0..records-1, paced
// over about three seconds so faults land mid-stream), a consumer group
// that commits after every poll, and a watcher of the committed offsets.
func (s *scenario) start() {
	popts := []kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks())}
	if os.Getenv("FAULT_DEBUG") != "" {
		popts = append(popts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, nil)))
	}
	producer := s.client(popts...)
	go func() {
		defer close(s.produceDone)
		var wg sync.WaitGroup
		for i := range records {
			wg.Add(1)
			v := strconv.Itoa(i)
			producer.Produce(s.ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}, func(_ *kgo.Record, err error) {
				defer wg.Done()
				if err != nil {
					s.produceErrs.Add(1)
					s.setErr(fmt.Errorf("produce: %w", err))
					return
				}
				s.produced.Add(1)
			})
			if i%20 == 19 {
				time.Sleep(30 * time.Millisecond)
			}
		}
		wg.Wait()
	}()

	consumer := s.client(kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
	go func() {
		defer close(s.consumeDone)
		for s.distinct() < records && s.ctx.Err() == nil {
			fs := consumer.PollFetches(s.ctx)
			fs.EachError(func(_ string, _ int32, err error) {
				if s.ctx.Err() == nil {
					s.t.Logf("consumer fetch error: %v", err)
				}
			})
			s.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { s.seen[string(r.Value)]++ })
			s.mu.Unlock()
			if err := consumer.CommitUncommittedOffsets(s.ctx); err != nil {
				s.commitErrs.Add(1)
			}
		}
		// The last commit must land: retry through whatever fault remains.
		for s.ctx.Err() == nil {
			if err := consumer.CommitUncommittedOffsets(s.ctx); err == nil {
				return
			}
			s.commitErrs.Add(1)
			time.Sleep(100 * time.Millisecond)
		}
	}()

	adm := kadm.NewClient(s.direct())
	go func() {
		last := map[int32]int64{}
		for {
			select {
			case <-s.consumeDone:
				return
			case <-time.After(25 * time.Millisecond):
			}
			offsets, err := adm.FetchOffsets(s.ctx, group)
			if err != nil {
				continue
			}
			offsets.Each(func(o kadm.OffsetResponse) {
				if o.Err != nil {
					return
				}
				if prev, ok := last[o.Partition]; ok && o.At < prev {
					s.mu.Lock()
					s.backward = append(s.backward, fmt.Sprintf("partition %d: %d after %d", o.Partition, o.At, prev))
					s.mu.Unlock()
				}
				last[o.Partition] = o.At
			})
		}
	}()
}

func (s *scenario) setErr(err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
}

func (s *scenario) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// running reports whether the producer is still producing.
func (s *scenario) running() bool {
	select {
	case <-s.produceDone:
		return false
	default:
		return true
	}
}

// verify waits for the workload and checks what landed.
func (s *scenario) verify() {
	t := s.t
	t.Helper()
	for _, ch := range []chan struct{}{s.produceDone, s.consumeDone} {
		select {
		case <-ch:
		case <-s.ctx.Done():
			t.Fatalf("workload did not finish: produced %d, consumed %d distinct; last error %v", s.produced.Load(), s.distinct(), s.lastErr)
		}
	}
	if n := s.produceErrs.Load(); n > 0 {
		t.Fatalf("%d records failed to produce; last: %v", n, s.lastErr)
	}
	if got := s.distinct(); got != records {
		t.Fatalf("consumer group saw %d distinct records, want %d", got, records)
	}

	// Exactly once: read every partition from the start, directly.
	adm := kadm.NewClient(s.direct())
	ends, err := adm.ListEndOffsets(s.ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != records {
		t.Fatalf("%d records in the topic, want exactly %d", total, records)
	}
	reader := s.direct(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	count := map[string]int{}
	for read := 0; read < records; {
		fs := reader.PollFetches(s.ctx)
		if s.ctx.Err() != nil {
			t.Fatalf("read back %d of %d records", read, records)
		}
		fs.EachRecord(func(r *kgo.Record) { count[string(r.Value)]++; read++ })
	}
	for i := range records {
		if c := count[strconv.Itoa(i)]; c != 1 {
			t.Fatalf("record %d is in the topic %d times", i, c)
		}
	}

	// No committed offset lost: the group's final commit is the end of
	// every partition, and none ever went backwards.
	committed, err := adm.FetchOffsets(s.ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(topic, o.Partition)
		if !ok || c.At != o.Offset {
			t.Errorf("partition %d: committed %v, want its end %d", o.Partition, c.At, o.Offset)
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.backward) > 0 {
		t.Fatalf("committed offsets went backwards: %v", s.backward)
	}
	t.Logf("ok: %d records exactly once, commits at the end of every partition (%d commit errors retried)", records, s.commitErrs.Load())
}

// waitProduced waits (bounded) until the workload has produced n more
// records than when called: the faults that follow hit a running workload.
func (s *scenario) waitProduced(n int64) {
	s.t.Helper()
	want := s.produced.Load() + n
	deadline := time.Now().Add(30 * time.Second)
	for s.produced.Load() < want {
		if time.Now().After(deadline) {
			s.t.Fatalf("the workload produced %d records in 30s, want %d", s.produced.Load(), want)
		}
		time.Sleep(10 * time.Millisecond) // polling the condition
	}
}

// every runs fn every d until the producer is done.
func (s *scenario) every(d time.Duration, fn func(i int)) {
	for i := 0; s.running(); i++ {
		fn(i)
		select {
		case <-s.produceDone:
		case <-time.After(d):
		}
	}
}
