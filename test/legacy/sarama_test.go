package legacy_test

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

func saramaConfig(name string, version sarama.KafkaVersion, codec sarama.CompressionCodec) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = name
	cfg.Version = version
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Compression = codec
	cfg.Producer.Retry.Backoff = 100 * time.Millisecond
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false // commit explicitly
	cfg.Consumer.Retry.Backoff = 100 * time.Millisecond
	cfg.Consumer.MaxWaitTime = 200 * time.Millisecond
	return cfg
}

// saramaProduce sends values with an async producer, so that a broker that
// never acknowledges cannot hold the test past ctx.
func saramaProduce(ctx context.Context, cfg *sarama.Config, seeds []string, vs []string) (int, error) {
	p, err := sarama.NewAsyncProducer(seeds, cfg)
	if err != nil {
		return 0, err
	}
	defer p.Close() // drains what is still in flight
	for _, v := range vs {
		// The input channel holds ChannelBufferSize (256) messages.
		p.Input() <- &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(v), Value: sarama.StringEncoder(v)}
	}
	acked, failed := 0, 0
	var firstErr error
	for acked+failed < len(vs) {
		select {
		case <-p.Successes():
			acked++
		case e := <-p.Errors():
			failed++
			firstErr = cmp.Or(firstErr, e.Err)
		case <-ctx.Done():
			return acked, cmp.Or(firstErr, ctx.Err())
		}
	}
	return acked, firstErr
}

// saramaGroupClient is sarama's consumer group (at 0.10.2: JoinGroup v1,
// Fetch v3, Produce v2 with magic 1 messages).
func saramaGroupClient(name string, version sarama.KafkaVersion, codec sarama.CompressionCodec) legacyClient {
	cfg := func() *sarama.Config { return saramaConfig(name, version, codec) }
	return legacyClient{
		name: name,
		produce: func(ctx context.Context, seeds []string, vs []string) (int, error) {
			return saramaProduce(ctx, cfg(), seeds, vs)
		},
		consume: func(ctx context.Context, seeds []string, want int) ([]string, error) {
			g, err := sarama.NewConsumerGroup(seeds, group, cfg())
			if err != nil {
				return nil, err
			}
			defer g.Close()
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			h := &saramaHandler{want: want, done: cancel}
			var consumeErr error
			for cctx.Err() == nil {
				if err := g.Consume(cctx, []string{topic}, h); err != nil {
					consumeErr = err
					break
				}
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			if len(h.got) == 0 {
				return nil, cmp.Or(consumeErr, ctx.Err())
			}
			return h.got, consumeErr
		},
	}
}

type saramaHandler struct {
	want int
	done func()

	mu  sync.Mutex
	got []string
}

func (*saramaHandler) Setup(sarama.ConsumerGroupSession) error { return nil }

// Cleanup commits what the session marked: the session ends when the
// consumer has what it wants, or its time is up.
func (*saramaHandler) Cleanup(sess sarama.ConsumerGroupSession) error {
	sess.Commit()
	return nil
}

func (h *saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		sess.MarkMessage(msg, "")
		h.mu.Lock()
		h.got = append(h.got, string(msg.Value))
		if len(h.got) >= h.want {
			h.done()
		}
		h.mu.Unlock()
	}
	return nil
}

// saramaPartitionClient is sarama consuming the way a 0.9 application did
// (its consumer groups need 0.10.2): a partition consumer per partition,
// starting at the offsets the group committed (at 0.9: OffsetManager with
// FindCoordinator v0, OffsetFetch v1, OffsetCommit v2; ListOffsets v0,
// Fetch v1 and Produce v1 with magic 0 messages; at 0.8.2 OffsetCommit v1,
// Fetch v0 and Produce v0).
func saramaPartitionClient(name string, version sarama.KafkaVersion, codec sarama.CompressionCodec) legacyClient {
	cfg := func() *sarama.Config { return saramaConfig(name, version, codec) }
	return legacyClient{
		name: name,
		produce: func(ctx context.Context, seeds []string, vs []string) (int, error) {
			return saramaProduce(ctx, cfg(), seeds, vs)
		},
		consume: func(ctx context.Context, seeds []string, want int) ([]string, error) {
			return saramaPartitionConsume(ctx, cfg(), seeds, want)
		},
		groupCommittedFirst: true,
	}
}

func saramaPartitionConsume(ctx context.Context, cfg *sarama.Config, seeds []string, want int) ([]string, error) {
	client, err := sarama.NewClient(seeds, cfg)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	om, err := sarama.NewOffsetManagerFromClient(group, client)
	if err != nil {
		return nil, err
	}
	defer om.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()

	msgs := make(chan *sarama.ConsumerMessage)
	poms := map[int32]sarama.PartitionOffsetManager{}
	var wg sync.WaitGroup
	defer wg.Wait()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for p := range int32(partitions) {
		pom, err := om.ManagePartition(topic, p)
		if err != nil {
			return nil, err
		}
		defer pom.AsyncClose() // Close would wait for a release that, without auto-commit, comes only with om.Close
		poms[p] = pom
		next, _ := pom.NextOffset()
		pc, err := consumer.ConsumePartition(topic, p, next)
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.AsyncClose()
			for {
				select {
				case m, ok := <-pc.Messages():
					if !ok {
						return
					}
					select {
					case msgs <- m:
					case <-cctx.Done():
						return
					}
				case <-cctx.Done():
					return
				}
			}
		}()
	}
	var got []string
	for len(got) < want && ctx.Err() == nil {
		select {
		case m := <-msgs:
			poms[m.Partition].MarkOffset(m.Offset+1, "")
			got = append(got, string(m.Value))
		case <-ctx.Done():
		}
	}
	cancel()
	wg.Wait()
	om.Commit()
	if len(got) == 0 {
		return nil, cmp.Or(ctx.Err(), errors.New("no records"))
	}
	return got, nil
}
