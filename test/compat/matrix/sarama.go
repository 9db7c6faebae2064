package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// saramaVersion is the Config.Version that matches the emulated broker, so
// sarama picks the request versions such a broker speaks.
func saramaVersion(kafka string) sarama.KafkaVersion {
	switch kafka {
	case "latest":
		return sarama.MaxVersion
	default:
		v, err := sarama.ParseKafkaVersion(kafka + ".0")
		if err != nil {
			return sarama.DefaultVersion
		}
		return v
	}
}

func saramaScenario(ctx context.Context, s scenario, res *result) error {
	brokers := strings.Split(s.bootstrap, ",")
	cfg := sarama.NewConfig()
	cfg.ClientID = "compat-sarama"
	cfg.Version = saramaVersion(s.kafka)
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false // commit explicitly

	admin, err := sarama.NewClusterAdmin(brokers, cfg)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	err = admin.CreateTopic(s.topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false)
	_ = admin.Close()
	if err != nil {
		return fmt.Errorf("create topic: %w", err)
	}

	producer, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	msgs := make([]*sarama.ProducerMessage, s.count)
	for i := range msgs {
		msgs[i] = &sarama.ProducerMessage{Topic: s.topic, Key: sarama.StringEncoder(value(i)), Value: sarama.StringEncoder(value(i))}
	}
	err = producer.SendMessages(msgs)
	_ = producer.Close()
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	res.produced = s.count

	// First member: consume everything, commit the marked offsets, leave.
	h := &saramaHandler{t: newTally(s.count), done: make(chan struct{}), assigned: make(chan struct{})}
	if err := saramaConsume(ctx, brokers, s, cfg, h, h.done); err != nil {
		return fmt.Errorf("first member: %w", err)
	}
	h.t.into(res)

	// Second member: must get nothing within secondPoll of its assignment.
	h2 := &saramaHandler{t: newTally(s.count), assigned: make(chan struct{})}
	stop := make(chan struct{})
	go func() {
		select {
		case <-h2.assigned:
			time.Sleep(s.secondPoll)
		case <-ctx.Done():
		}
		close(stop)
	}()
	if err := saramaConsume(ctx, brokers, s, cfg, h2, stop); err != nil {
		return fmt.Errorf("second member: %w", err)
	}
	h2.mu.Lock()
	res.second = len(h2.t.seen) + h2.t.extra
	h2.mu.Unlock()
	select {
	case <-h2.assigned:
	default:
		return errors.New("second member never got an assignment")
	}
	return nil
}

// saramaConsume runs one group member until stop closes.
func saramaConsume(ctx context.Context, brokers []string, s scenario, cfg *sarama.Config, h *saramaHandler, stop <-chan struct{}) error {
	group, err := sarama.NewConsumerGroup(brokers, s.group, cfg)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	go func() {
		for cctx.Err() == nil {
			if err := group.Consume(cctx, []string{s.topic}, h); err != nil {
				consumed <- err
				return
			}
		}
		consumed <- nil
	}()
	select {
	case <-stop:
	case <-ctx.Done():
	}
	cancel()
	err = <-consumed
	if cerr := group.Close(); err == nil {
		err = cerr
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return err
}

type saramaHandler struct {
	mu       sync.Mutex
	t        *tally
	done     chan struct{} // nil for the second member
	once     sync.Once
	assigned chan struct{}
	aOnce    sync.Once
}

func (h *saramaHandler) Setup(sarama.ConsumerGroupSession) error {
	h.aOnce.Do(func() { close(h.assigned) })
	return nil
}

func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		sess.MarkMessage(msg, "")
		h.mu.Lock()
		all := h.t.add(string(msg.Value))
		h.mu.Unlock()
		if all && h.done != nil {
			// Every record is marked: commit them all synchronously.
			// Commit reports no error (the offset manager logs it); the
			// second member's count is what checks the commit.
			h.once.Do(func() {
				sess.Commit()
				close(h.done)
			})
		}
	}
	return nil
}
