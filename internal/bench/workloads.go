package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Workload names, in table order.
const (
	wProduce1K  = "produce 1 KiB records (kgo)"
	wProduce100 = "produce 100 B records (kgo)"
	wConsume    = "consume 1 MiB batches (kgo)"
	wFetchRaw   = "fetch 1 MiB frames (raw socket, 2 in flight)"
	wApiVers    = "ApiVersions round trip"
	wMetadata   = "Metadata round trip"
	wMix        = "pipelined Fetch+Heartbeat+OffsetCommit (one socket)"
)

// bigTopics are the sizes of the large-Metadata rows: one topic of that
// many partitions on a canned broker (canned.go). The answer grows with
// them while its brokers do not, so its rewrite cost should not.
var bigTopics = []int32{1000, 20000, 100000}

func bigTopic(partitions int32) string { return fmt.Sprintf("big-%d", partitions) }

func wMetadataBig(partitions int32) string {
	return fmt.Sprintf("Metadata round trip, one topic of %d partitions", partitions)
}

// sample is one path's result for one round of one workload.
type sample struct {
	records int64
	bytes   int64
	elapsed time.Duration
	lat     []time.Duration
	usage   usage
	// childCPU is what the relay or kproxy process spent, when the path
	// runs through one (procenv.go).
	childCPU time.Duration
}

func (e *env) workloads() []workload {
	return []workload{
		{wProduce1K, func(ctx context.Context, p path) (sample, error) { return e.produce(ctx, p, 1024) }},
		{wProduce100, func(ctx context.Context, p path) (sample, error) { return e.produce(ctx, p, 100) }},
		{wConsume, e.consume},
		{wFetchRaw, e.fetchRaw},
		{wApiVers, func(ctx context.Context, p path) (sample, error) {
			return e.roundTrips(ctx, p, apiVersionsRequest())
		}},
		{wMetadata, func(ctx context.Context, p path) (sample, error) {
			return e.roundTrips(ctx, p, metadataRequest())
		}},
		{wMix, func(ctx context.Context, p path) (sample, error) {
			return e.roundTrips(ctx, p, mixFetchRequest(), heartbeatRequest(), offsetCommitRequest())
		}},
	}
}

func (e *env) client(p path, opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{kgo.SeedBrokers(p.seeds...), kgo.ClientID("kproxy-bench")}
	if p.via != nil || p.tls != nil {
		base = append(base, kgo.Dialer(dialVia(p.via, p.tls)))
	}
	base = append(base, p.opts...)
	return kgo.NewClient(append(base, opts...)...)
}

// produce sends records of size bytes for the configured duration with
// acks=all and idempotence (kgo's defaults), as fast as the client goes.
// Uncompressed, so that the bytes counted are the bytes moved; buffered
// deep enough that batches fill before they go out, so that the result does
// not hinge on how a path's round-trip time shapes the batches.
func (e *env) produce(ctx context.Context, p path, size int) (sample, error) {
	cl, err := e.client(p, kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.MaxBufferedRecords(1<<20), kgo.MaxBufferedBytes(32<<20))
	if err != nil {
		return sample{}, err
	}
	defer cl.Close()
	value := make([]byte, size)
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
		return sample{}, fmt.Errorf("warm-up produce: %w", err)
	}
	var acked, failed atomic.Int64
	var firstErr atomic.Value
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err)
			return
		}
		acked.Add(1)
	}
	start := time.Now()
	for end := start.Add(e.opts.Duration); time.Now().Before(end) && ctx.Err() == nil; {
		for range 256 {
			cl.Produce(ctx, &kgo.Record{Value: value}, done)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return sample{}, err
	}
	elapsed := time.Since(start)
	if failed.Load() > 0 {
		return sample{}, fmt.Errorf("%d records failed: %v", failed.Load(), firstErr.Load())
	}
	n := acked.Load()
	return sample{records: n, bytes: n * int64(size), elapsed: elapsed}, nil
}

// consume reads every partition from the start with kgo for the configured
// duration; bytes are record values.
func (e *env) consume(ctx context.Context, p path) (sample, error) {
	offsets := map[int32]kgo.Offset{}
	for i := range int32(partitions) {
		offsets[i] = kgo.NewOffset().AtStart()
	}
	cl, err := e.client(p, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))
	if err != nil {
		return sample{}, err
	}
	defer cl.Close()
	poll := func() (records, bytes int64, err error) {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		fs := cl.PollFetches(pctx)
		if errs := fs.Errors(); len(errs) > 0 {
			return 0, 0, fmt.Errorf("fetch %s[%d]: %w", errs[0].Topic, errs[0].Partition, errs[0].Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			records++
			bytes += int64(len(r.Key) + len(r.Value))
		})
		return records, bytes, nil
	}
	if _, _, err := poll(); err != nil { // warm-up: connections, metadata, offsets
		return sample{}, err
	}
	var s sample
	start := time.Now()
	for end := start.Add(e.opts.Duration); time.Now().Before(end); {
		r, b, err := poll()
		if err != nil {
			return sample{}, err
		}
		s.records += r
		s.bytes += b
	}
	s.elapsed = time.Since(start)
	return s, nil
}

// fetchRaw fetches one partition over one socket, two requests in flight,
// and counts whole response frames: the proxy's forwarding cost without a
// client's record decoding.
func (e *env) fetchRaw(ctx context.Context, p path) (sample, error) {
	c, err := dialRaw(p.raw)
	if err != nil {
		return sample{}, err
	}
	defer c.close()
	req := c.frame(fetchRequest(0))
	const depth = 2
	for range depth {
		if err := c.send(req); err != nil {
			return sample{}, err
		}
	}
	var s sample
	start := time.Now()
	end := start.Add(e.opts.Duration)
	for inflight := depth; inflight > 0; {
		n, err := c.recv()
		if err != nil {
			return sample{}, err
		}
		inflight--
		s.records++
		s.bytes += int64(n)
		if time.Now().Before(end) && ctx.Err() == nil {
			if err := c.send(req); err != nil {
				return sample{}, err
			}
			inflight++
		}
	}
	s.elapsed = time.Since(start)
	return s, nil
}

// roundTrips writes reqs back to back on one socket (one write), waits for
// every answer, and records each answer's latency from the write; then
// again, Samples times.
func (e *env) roundTrips(ctx context.Context, p path, reqs ...kmsg.Request) (sample, error) {
	return e.roundTripsN(ctx, p, e.opts.Samples, reqs...)
}

// roundTripsN is roundTrips, samples times; bytes are the answers' bytes.
func (e *env) roundTripsN(ctx context.Context, p path, samples int, reqs ...kmsg.Request) (sample, error) {
	c, err := dialRaw(p.raw)
	if err != nil {
		return sample{}, err
	}
	defer c.close()
	var batch []byte
	for _, r := range reqs {
		batch = append(batch, c.frame(r)...)
	}
	// Warm up: the proxy dials its lanes on first use.
	if _, err := c.exchange(batch, len(reqs), nil); err != nil {
		return sample{}, err
	}
	s := sample{lat: make([]time.Duration, 0, samples*len(reqs))}
	start := time.Now()
	for range samples {
		if ctx.Err() != nil {
			break
		}
		n, err := c.exchange(batch, len(reqs), &s.lat)
		if err != nil {
			return sample{}, err
		}
		s.records += int64(len(reqs))
		s.bytes += n
	}
	s.elapsed = time.Since(start)
	return s, nil
}
