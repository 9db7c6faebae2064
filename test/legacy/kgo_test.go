package legacy_test

import (
	"cmp"
	"context"
	"errors"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"
)

var (
	kgoV0101 = kversion.V0_10_1 // Produce v2, Fetch v3, JoinGroup v1: magic 1 messages
	kgoV090  = kversion.V0_9_0  // Produce v1, Fetch v1, JoinGroup v0: magic 0, no ApiVersions
)

// kgoClient is franz-go held to the request versions of an old Kafka.
func kgoClient(name string, versions func() *kversion.Versions, codec kgo.CompressionCodec) legacyClient {
	base := func(seeds []string) []kgo.Opt {
		return []kgo.Opt{
			kgo.SeedBrokers(seeds...),
			kgo.MaxVersions(versions()),
			kgo.ClientID(name),
		}
	}
	return legacyClient{
		name: name,
		produce: func(ctx context.Context, seeds []string, vs []string) (int, error) {
			cl, err := kgo.NewClient(append(base(seeds),
				kgo.DefaultProduceTopic(topic),
				kgo.DisableIdempotentWrite(), // no InitProducerID before 0.11
				kgo.ProducerBatchCompression(codec),
			)...)
			if err != nil {
				return 0, err
			}
			defer cl.Close()
			var (
				mu       sync.Mutex
				acked    int
				firstErr error
				wg       sync.WaitGroup
			)
			for _, v := range vs {
				wg.Add(1)
				cl.Produce(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}, func(_ *kgo.Record, err error) {
					defer wg.Done()
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						firstErr = cmp.Or(firstErr, err)
						return
					}
					acked++
				})
			}
			all := make(chan struct{})
			go func() { wg.Wait(); close(all) }()
			select {
			case <-all:
			case <-ctx.Done():
				// A record in flight outlives its context; Close fails it.
				cl.Close()
				<-all
			}
			mu.Lock()
			defer mu.Unlock()
			return acked, firstErr
		},
		consume: func(ctx context.Context, seeds []string, want int) ([]string, error) {
			cl, err := kgo.NewClient(append(base(seeds),
				kgo.ConsumeTopics(topic),
				kgo.ConsumerGroup(group),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.DisableAutoCommit(),
			)...)
			if err != nil {
				return nil, err
			}
			defer cl.Close() // leaves the group
			var got []string
			var fetchErr error
			for len(got) < want && ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				for _, e := range fs.Errors() {
					if !errors.Is(e.Err, context.DeadlineExceeded) && !errors.Is(e.Err, context.Canceled) {
						fetchErr = cmp.Or(fetchErr, e.Err)
					}
				}
				fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
			}
			if len(got) == 0 {
				return nil, cmp.Or(fetchErr, ctx.Err())
			}
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
			defer cancel()
			return got, cl.CommitUncommittedOffsets(cctx)
		},
	}
}
