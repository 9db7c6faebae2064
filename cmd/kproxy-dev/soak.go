package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/cli"
	"github.com/kproxy/kproxy/internal/listener"
	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/sidecar"
)

// Soak topics and groups: one per client library, so each is checked on
// its own.
const (
	soakKgoTopic    = "soak-kgo"
	soakSaramaTopic = "soak-sarama"
	soakPartitions  = 6
)

// soak is one run: an embedded cluster, kproxy in front, kgo and sarama
// producers and consumer groups through it, and a fault every few seconds.
type soak struct {
	duration, faultEvery time.Duration
	rate                 int // records per second per producer
	out                  io.Writer

	cluster *kfake.Cluster
	conns   loopback.ConnTracker
	srv     *listener.Server
	ctx     context.Context

	acked        [2]sync.Map  // per producer: value → struct{}
	saramaDone   atomic.Int64 // sarama records answered: acked or failed
	clientErrors atomic.Int64
	errSamples   sync.Map // error text → count, for the summary
	seen         [2]sync.Map
	seenCount    [2]atomic.Int64
	faults       sync.Map // kind → *atomic.Int64
	faultsOver   atomic.Bool
	peakHeap     atomic.Uint64
}

const (
	kgoIdx    = 0
	saramaIdx = 1
)

func runSoak(args []string, stdout, stderr io.Writer) error {
	s := &soak{out: stdout}
	fs := cli.NewFlagSet("kproxy-dev soak [flags]", "Runs kgo and sarama producers and consumer groups through kproxy against an embedded cluster while injecting faults, and checks that every acknowledged record is consumed.")
	fs.DurationVar(&s.duration, "duration", 60*time.Second, "how long to produce while injecting faults")
	fs.DurationVar(&s.faultEvery, "fault-every", 3*time.Second, "time between injected faults")
	fs.IntVar(&s.rate, "rate", 300, "records per second per producer")
	logLevel := fs.String("log-level", "error", "kproxy log level")
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.ctx = ctx

	cluster, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(soakPartitions, soakKgoTopic, soakSaramaTopic), kfake.ListenFn(s.conns.Listen))
	if err != nil {
		return fmt.Errorf("start embedded cluster: %w", err)
	}
	defer cluster.Close()
	s.cluster = cluster

	cfg := config.Defaults()
	cfg.Upstream.BootstrapServers = cluster.ListenAddrs()
	cfg.Upstream.DialBackoffMax = time.Second
	cfg.Listen.Bootstrap = "127.0.0.1:0"
	cfg.Listen.BrokerPortBase = 0
	cfg.Limits.UpstreamAnswerGrace = 5 * time.Second
	cfg.Log.Level, cfg.Log.Format = *logLevel, "console"
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, err := sidecar.NewLogger(cfg.Log)
	if err != nil {
		return err
	}
	srv, err := listener.New(cfg, log, metrics.New(prometheus.NewRegistry(), version))
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	s.srv = srv
	fmt.Fprintf(stdout, "soak: %v through kproxy %s, a fault every %v, %d records/s per producer\n", s.duration, srv.BootstrapAddr(), s.faultEvery, s.rate)

	start := time.Now()
	go s.sampleMemory()
	report, err := s.run()
	sctx, scancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer scancel()
	_ = srv.Shutdown(sctx)
	cluster.Close()
	cancel()
	report.elapsed = time.Since(start)
	report.goroutines = settledGoroutines()
	report.print(stdout, s, err)
	if err != nil {
		return err
	}
	if report.failed() {
		return errors.New("records lost or duplicated")
	}
	return nil
}

// run drives the load and the faults, then checks what landed.
func (s *soak) run() (*soakReport, error) {
	kgoProd, err := s.kgoClient(kgo.DefaultProduceTopic(soakKgoTopic), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return &soakReport{}, err
	}
	defer kgoProd.Close()
	saramaProd, err := sarama.NewAsyncProducer([]string{s.srv.BootstrapAddr()}, saramaConfig())
	if err != nil {
		return &soakReport{}, fmt.Errorf("sarama producer: %w", err)
	}
	kgoCons, err := s.kgoClient(kgo.ConsumeTopics(soakKgoTopic), kgo.ConsumerGroup("soak-kgo-group"),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return &soakReport{}, err
	}
	defer kgoCons.Close()
	saramaCons, err := sarama.NewConsumerGroup([]string{s.srv.BootstrapAddr()}, "soak-sarama-group", saramaConfig())
	if err != nil {
		return &soakReport{}, fmt.Errorf("sarama consumer group: %w", err)
	}
	defer saramaCons.Close()

	consumeCtx, stopConsuming := context.WithCancel(s.ctx)
	defer stopConsuming()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.consumeKgo(consumeCtx, kgoCons) }()
	go func() { defer wg.Done(); s.consumeSarama(consumeCtx, saramaCons) }()
	saramaDone := make(chan struct{})
	go func() { defer close(saramaDone); s.saramaResults(saramaProd) }()

	produceCtx, stopProducing := context.WithTimeout(s.ctx, s.duration)
	defer stopProducing()
	faultsDone := make(chan struct{})
	go func() { defer close(faultsDone); s.injectFaults(produceCtx) }()
	var produced [2]int
	var pending sync.WaitGroup
	tick := time.NewTicker(100 * time.Millisecond)
	for produceCtx.Err() == nil {
		<-tick.C
		for range s.rate / 10 {
			v := "kgo-" + strconv.Itoa(produced[kgoIdx])
			produced[kgoIdx]++
			pending.Add(1)
			kgoProd.Produce(s.ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}, func(r *kgo.Record, err error) {
				defer pending.Done()
				if err != nil {
					s.clientError("kgo produce", err)
					return
				}
				s.acked[kgoIdx].Store(string(r.Value), struct{}{})
			})
			v = "sarama-" + strconv.Itoa(produced[saramaIdx])
			produced[saramaIdx]++
			saramaProd.Input() <- &sarama.ProducerMessage{Topic: soakSaramaTopic, Key: sarama.StringEncoder(v), Value: sarama.StringEncoder(v)}
		}
	}
	tick.Stop()
	<-faultsDone

	// Drain: every record is acked or failed, then consumers catch up.
	pending.Wait()
	// Let sarama finish its retries before closing it: a record still
	// being retried at close fails with "in process of shutting down".
	for settle := time.Now().Add(time.Minute); s.saramaDone.Load() < int64(produced[saramaIdx]) && time.Now().Before(settle); {
		time.Sleep(50 * time.Millisecond)
	}
	saramaProd.AsyncClose()
	// Every sarama answer is in once both result channels are closed; the
	// records the consumers must see are only known then.
	<-saramaDone
	report := &soakReport{produced: produced}
	deadline := time.Now().Add(2 * time.Minute)
	for i := range s.acked {
		want := int64(lenMap(&s.acked[i]))
		for s.seenAcked(i) < want && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
	}
	stopConsuming()
	wg.Wait()
	return report, s.check(report)
}

func (s *soak) kgoClient(opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.srv.BootstrapAddr()), kgo.MetadataMinAge(250 * time.Millisecond)}, opts...)...)
}

// saramaConfig is an idempotent producer and a consumer group member that
// commits marked offsets every 100ms.
func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Retry.Max = 1000
	cfg.Producer.Retry.Backoff = 100 * time.Millisecond
	cfg.Net.MaxOpenRequests = 1
	cfg.Metadata.Retry.Max = 100
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	return cfg
}

func (s *soak) saramaResults(p sarama.AsyncProducer) {
	succ, errs := p.Successes(), p.Errors()
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			v, _ := m.Value.Encode()
			s.acked[saramaIdx].Store(string(v), struct{}{})
			s.saramaDone.Add(1)
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			s.clientError("sarama produce", e.Err)
			s.saramaDone.Add(1)
		}
	}
}

func (s *soak) consumeKgo(ctx context.Context, cl *kgo.Client) {
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.Canceled) {
				s.clientError("kgo fetch", err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) { s.see(kgoIdx, string(r.Value)) })
		if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			s.clientError("kgo commit", err)
		}
	}
}

func (s *soak) consumeSarama(ctx context.Context, g sarama.ConsumerGroup) {
	go func() {
		for err := range g.Errors() {
			s.clientError("sarama consumer group", err)
		}
	}()
	h := saramaHandler{s}
	for ctx.Err() == nil {
		if err := g.Consume(ctx, []string{soakSaramaTopic}, h); err != nil && ctx.Err() == nil {
			s.clientError("sarama consume", err)
			time.Sleep(100 * time.Millisecond)
		}
	}
}

type saramaHandler struct{ s *soak }

func (saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.s.see(saramaIdx, string(m.Value))
		sess.MarkMessage(m, "")
	}
	return nil
}

func (s *soak) see(i int, v string) {
	if _, dup := s.seen[i].LoadOrStore(v, struct{}{}); !dup {
		s.seenCount[i].Add(1)
	}
}

// seenAcked is how many distinct records consumer i has seen (a consumer
// may see a record whose ack was lost; that only makes this larger).
func (s *soak) seenAcked(i int) int64 { return s.seenCount[i].Load() }

func (s *soak) clientError(where string, err error) {
	s.clientErrors.Add(1)
	// Numbers become # so that one kind of error is one line of the summary.
	msg := digits.ReplaceAllString(where+": "+err.Error(), "#")
	if len(msg) > 140 {
		msg = msg[:140]
	}
	n, _ := s.errSamples.LoadOrStore(msg, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

var digits = regexp.MustCompile(`[0-9]+`)

func lenMap(m *sync.Map) int {
	n := 0
	m.Range(func(any, any) bool { n++; return true })
	return n
}

func (s *soak) sampleMemory() {
	var ms runtime.MemStats
	for s.ctx.Err() == nil {
		runtime.ReadMemStats(&ms)
		for peak := s.peakHeap.Load(); ms.HeapInuse > peak && !s.peakHeap.CompareAndSwap(peak, ms.HeapInuse); peak = s.peakHeap.Load() {
		}
		time.Sleep(time.Second)
	}
}

// settledGoroutines counts goroutines once background ones have had a
// moment to exit.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		if m := runtime.NumGoroutine(); m >= n {
			break
		} else {
			n = m
		}
	}
	return n
}

// check reads both topics from the cluster directly and compares them with
// what the producers were told was written and what the groups consumed.
func (s *soak) check(r *soakReport) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.cluster.ListenAddrs()...), kgo.ConsumeTopics(soakKgoTopic, soakSaramaTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, soakKgoTopic, soakSaramaTopic)
	if err != nil {
		return fmt.Errorf("list end offsets: %w", err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	counts := [2]map[string]int{{}, {}}
	for read := int64(0); read < total; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("read back %d of %d records", read, total)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			read++
			i := kgoIdx
			if rec.Topic == soakSaramaTopic {
				i = saramaIdx
			}
			counts[i][string(rec.Value)]++
		})
	}
	for i := range counts {
		r.acked[i] = lenMap(&s.acked[i])
		r.stored[i] = len(counts[i])
		for _, c := range counts[i] {
			if c > 1 {
				r.duplicated[i] += c - 1
			}
		}
		s.acked[i].Range(func(k, _ any) bool {
			if counts[i][k.(string)] == 0 {
				r.lost[i]++
			}
			if _, ok := s.seen[i].Load(k); !ok {
				r.unconsumed[i]++
			}
			return true
		})
	}
	return nil
}

type soakReport struct {
	produced, acked, stored, lost, duplicated, unconsumed [2]int
	elapsed                                               time.Duration
	goroutines                                            int
}

func (r *soakReport) failed() bool {
	for i := range 2 {
		if r.lost[i] > 0 || r.duplicated[i] > 0 || r.unconsumed[i] > 0 {
			return true
		}
	}
	return false
}

// print writes the summary; checkErr is why the soak could not check what
// landed, if it could not.
func (r *soakReport) print(w io.Writer, s *soak, checkErr error) {
	fmt.Fprintf(w, "soak summary (%v)\n", r.elapsed.Round(time.Second))
	for i, name := range []string{"kgo", "sarama"} {
		fmt.Fprintf(w, "  %-7s produced %d, acked %d, in topic %d distinct, lost %d, duplicated %d, acked but not consumed by the group %d\n",
			name, r.produced[i], r.acked[i], r.stored[i], r.lost[i], r.duplicated[i], r.unconsumed[i])
	}
	var kinds []string
	total := int64(0)
	s.faults.Range(func(k, v any) bool {
		n := v.(*atomic.Int64).Load()
		total += n
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		return true
	})
	fmt.Fprintf(w, "  faults injected: %d (%s)\n", total, strings.Join(sortedStrings(kinds), ", "))
	fmt.Fprintf(w, "  client errors seen (retried or reported by the clients): %d\n", s.clientErrors.Load())
	s.errSamples.Range(func(k, v any) bool {
		fmt.Fprintf(w, "    %dx %s\n", v.(*atomic.Int64).Load(), k)
		return true
	})
	fmt.Fprintf(w, "  peak heap in use: %.1f MiB; goroutines at end: %d\n", float64(s.peakHeap.Load())/(1<<20), r.goroutines)
	verdict := "PASS: nothing lost, nothing duplicated"
	switch {
	case checkErr != nil:
		verdict = "FAIL: not checked: " + checkErr.Error()
	case r.failed():
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "  %s\n", verdict)
}
