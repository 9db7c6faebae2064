package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

func kafkaGoScenario(ctx context.Context, s scenario, res *result) error {
	brokers := strings.Split(s.bootstrap, ",")
	logf := kafka.LoggerFunc(func(msg string, args ...any) { fmt.Fprintf(s.log, "kafka-go: "+msg+"\n", args...) })

	// Client goes through a Transport: one request at a time per connection.
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second}
	cr, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: s.topic, NumPartitions: 3, ReplicationFactor: 1}},
	})
	if err == nil {
		err = cr.Errors[s.topic]
	}
	if err != nil {
		return fmt.Errorf("create topic: %w", err)
	}

	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        s.topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 10 * time.Millisecond,
		ErrorLogger:  logf,
	}
	msgs := make([]kafka.Message, s.count)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte(value(i)), Value: []byte(value(i))}
	}
	err = w.WriteMessages(ctx, msgs...)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	res.produced = s.count

	// First member: the Reader fetches over Conn; commit synchronously
	// (CommitInterval 0) the last message of each partition, then leave.
	t := newTally(s.count)
	first, _ := kafkaGoReader(s, brokers, logf)
	last := map[int]kafka.Message{}
	for {
		m, err := first.FetchMessage(ctx)
		if err != nil {
			first.Close()
			return fmt.Errorf("first member fetch: %w", err)
		}
		last[m.Partition] = m
		if t.add(string(m.Value)) {
			break
		}
	}
	t.into(res)
	var commit []kafka.Message
	for _, m := range last {
		commit = append(commit, m)
	}
	if err := first.CommitMessages(ctx, commit...); err != nil {
		first.Close()
		return fmt.Errorf("commit: %w", err)
	}
	if err := first.Close(); err != nil {
		return fmt.Errorf("first member close: %w", err)
	}

	// Second member: read for secondPoll after its assignment.
	second, assigned := kafkaGoReader(s, brokers, logf)
	defer second.Close()
	t2 := newTally(s.count)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-assigned:
			select {
			case <-time.After(s.secondPoll):
			case <-rctx.Done():
			}
		case <-rctx.Done():
		}
		cancel()
	}()
	for {
		m, err := second.FetchMessage(rctx)
		if err != nil {
			break
		}
		t2.add(string(m.Value))
	}
	res.second = len(t2.seen) + t2.extra
	if ctx.Err() != nil {
		return ctx.Err()
	}
	select {
	case <-assigned:
		return nil
	default:
		return errors.New("second member never got an assignment")
	}
}

// kafkaGoReader is a group member; assigned closes when kafka-go logs its
// partition assignment.
func kafkaGoReader(s scenario, brokers []string, errLog kafka.Logger) (*kafka.Reader, <-chan struct{}) {
	assigned := make(chan struct{})
	var once sync.Once
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        brokers,
		GroupID:        s.group,
		Topic:          s.topic,
		StartOffset:    kafka.FirstOffset,
		CommitInterval: 0, // CommitMessages commits synchronously
		MaxWait:        time.Second,
		Logger: kafka.LoggerFunc(func(msg string, args ...any) {
			if strings.HasPrefix(msg, "subscribed to topics and partitions") {
				once.Do(func() { close(assigned) })
			}
		}),
		ErrorLogger: errLog,
	})
	return r, assigned
}
