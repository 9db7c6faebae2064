package listener_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kproxy/kproxy/internal/proxytest"
)

type countingHandler struct {
	mu          sync.Mutex
	seen        map[string]int
	generations map[int32]bool // the group generations this member consumed in
	want        int
	done        chan struct{}
	once        sync.Once
}

func (h *countingHandler) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.generations == nil {
		h.generations = map[int32]bool{}
	}
	h.generations[s.GenerationID()] = true
	return nil
}

func (h *countingHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *countingHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for msg := range c.Messages() {
		h.mu.Lock()
		h.seen[string(msg.Value)]++
		n := len(h.seen)
		h.mu.Unlock()
		s.MarkMessage(msg, "")
		if n >= h.want {
			h.once.Do(func() { close(h.done) })
		}
	}
	return nil
}

// saramaGroupConfig is a sarama producer and group consumer that waits for
// all replicas and reads from the oldest offset.
func saramaGroupConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	return cfg
}

// saramaProduce sends values "0" to n-1 to topic with a sync producer, and
// closes it.
func saramaProduce(t *testing.T, bootstrap string, cfg *sarama.Config, topic string, n int) {
	t.Helper()
	producer, err := sarama.NewSyncProducer([]string{bootstrap}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]*sarama.ProducerMessage, n)
	for i := range msgs {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprint(i))}
	}
	if err := producer.SendMessages(msgs); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if err := producer.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSaramaProduceConsumeGroup drives the classic single-socket,
// strict-order client through the proxy.
func TestSaramaProduceConsumeGroup(t *testing.T) {
	t.Parallel()
	env := proxytest.Start(t, proxytest.Options{Kfake: []kfake.Opt{kfake.SeedTopics(3, "events")}})
	const n = 2000

	cfg := saramaGroupConfig()
	saramaProduce(t, env.Bootstrap(), cfg, "events", n)

	group, err := sarama.NewConsumerGroup([]string{env.Bootstrap()}, "sarama-group", cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &countingHandler{seen: map[string]int{}, want: n, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	consumed := consumeInBackground(ctx, group, "events", h)
	select {
	case <-h.done:
	case <-ctx.Done():
	}
	cancel()
	if err := <-consumed; err != nil {
		t.Fatalf("consume: %v", err)
	}
	if err := group.Close(); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) != n {
		t.Fatalf("consumed %d distinct records, want %d", len(h.seen), n)
	}
	// A rebalance before the member commits hands a record out again:
	// the group's at-least-once contract. In one generation each record
	// comes once, or kproxy (or a producer retry) doubled it.
	for v, c := range h.seen {
		if c != 1 && len(h.generations) == 1 {
			t.Fatalf("record %s consumed %d times in one generation of the group", v, c)
		}
	}
	if len(h.generations) > 1 {
		t.Logf("the group rebalanced: %d generations", len(h.generations))
	}
}

// consumeInBackground runs group over topic until ctx ends or Consume
// fails; the channel carries the failure, or nil.
func consumeInBackground(ctx context.Context, group sarama.ConsumerGroup, topic string, h sarama.ConsumerGroupHandler) <-chan error {
	consumed := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := group.Consume(ctx, []string{topic}, h); err != nil {
				consumed <- err
				return
			}
		}
		consumed <- nil
	}()
	return consumed
}
