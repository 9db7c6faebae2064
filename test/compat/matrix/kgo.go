package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func kgoScenario(ctx context.Context, s scenario, res *result) error {
	seeds := kgo.SeedBrokers(strings.Split(s.bootstrap, ",")...)
	logger := kgo.WithLogger(kgo.BasicLogger(s.log, kgo.LogLevelWarn, nil))

	admin, err := kgo.NewClient(seeds, logger, kgo.ClientID("compat-kgo-admin"))
	if err != nil {
		return err
	}
	resp, err := kadm.NewClient(admin).CreateTopic(ctx, 3, 1, nil, s.topic)
	admin.Close()
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic: %w", err)
	}

	producer, err := kgo.NewClient(seeds, logger, kgo.ClientID("compat-kgo-producer"),
		kgo.DefaultProduceTopic(s.topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return err
	}
	var produced atomic.Int64
	var produceErr atomic.Value
	for i := range s.count {
		producer.Produce(ctx, &kgo.Record{Key: []byte(value(i)), Value: []byte(value(i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				produceErr.CompareAndSwap(nil, err)
				return
			}
			produced.Add(1)
		})
	}
	err = producer.Flush(ctx)
	producer.Close()
	res.produced = int(produced.Load())
	if perr, _ := produceErr.Load().(error); perr != nil {
		return fmt.Errorf("produce: %w", perr)
	}
	if err != nil {
		return fmt.Errorf("produce flush: %w", err)
	}

	// First member: poll until every record arrived, commit, leave.
	t := newTally(s.count)
	first, err := kgoConsumer(s, seeds, logger, "compat-kgo-consumer-1", nil)
	if err != nil {
		return err
	}
	for {
		fs := first.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		if errs := fs.Errors(); len(errs) > 0 {
			first.Close()
			return fmt.Errorf("first member fetch: %w", errs[0].Err)
		}
		all := false
		fs.EachRecord(func(r *kgo.Record) { all = t.add(string(r.Value)) || all })
		if all {
			break
		}
	}
	t.into(res)
	if err := first.CommitUncommittedOffsets(ctx); err != nil {
		first.Close()
		return fmt.Errorf("commit: %w", err)
	}
	first.Close() // leaves the group

	// Second member: poll for secondPoll after its assignment.
	assigned := make(chan struct{})
	var once atomic.Bool
	onAssign := func(context.Context, *kgo.Client, map[string][]int32) {
		if once.CompareAndSwap(false, true) {
			close(assigned)
		}
	}
	second, err := kgoConsumer(s, seeds, logger, "compat-kgo-consumer-2", onAssign)
	if err != nil {
		return err
	}
	defer second.Close()
	t2 := newTally(s.count)
	var until time.Time
	for ctx.Err() == nil {
		select {
		case <-assigned:
			if until.IsZero() {
				until = time.Now().Add(s.secondPoll)
			}
		default:
		}
		if !until.IsZero() && time.Now().After(until) {
			break
		}
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := second.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { t2.add(string(r.Value)) })
	}
	res.second = len(t2.seen) + t2.extra
	if until.IsZero() {
		return errors.New("second member never got an assignment")
	}
	return nil
}

func kgoConsumer(s scenario, seeds, logger kgo.Opt, id string, onAssign func(context.Context, *kgo.Client, map[string][]int32)) (*kgo.Client, error) {
	opts := []kgo.Opt{seeds, logger, kgo.ClientID(id),
		kgo.ConsumeTopics(s.topic), kgo.ConsumerGroup(s.group),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit()}
	if onAssign != nil {
		opts = append(opts, kgo.OnPartitionsAssigned(onAssign))
	}
	return kgo.NewClient(opts...)
}
