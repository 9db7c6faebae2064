package hol

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var errNoMember = errors.New("the group never had a member")

// SaramaGroupOptions describe one sarama consumer-group run.
type SaramaGroupOptions struct {
	Bootstrap string // where sarama connects: the broker or kproxy
	Broker    string // the broker itself, for DescribeGroups
	Group     string
	Topic     string
	Duration  time.Duration
	// Commit makes the member commit an offset every second, so that
	// OffsetCommit answers are timed too.
	Commit bool
}

// GroupRun is what a run saw.
type GroupRun struct {
	Rebalances         int // member ids the broker reported, minus the first
	MemberIDs          int
	Sessions           int             // sarama group sessions (Setup calls)
	HeartbeatLatencies []time.Duration // written to answered, on the wire
	CommitLatencies    []time.Duration
	MaxHeartbeatGap    time.Duration // longest time between two Heartbeat answers
	HeartbeatAnswered  []time.Time   // when each Heartbeat answer arrived
}

// Sarama's long poll outlasts its group session: every Heartbeat that
// waits behind a Fetch on the shared socket risks the session.
const (
	SaramaMaxWait        = 9 * time.Second
	SaramaSessionTimeout = 6 * time.Second
	SaramaHeartbeat      = time.Second
)

// RunSaramaGroup runs one sarama group member on an idle topic for
// o.Duration and counts, from the broker's side, how often the group
// rebalanced.
func RunSaramaGroup(ctx context.Context, o SaramaGroupOptions) (GroupRun, error) {
	tap := NewTap(12, 8) // Heartbeat, OffsetCommit
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.ClientID = "hol-" + o.Group
	cfg.Net.Proxy.Enable, cfg.Net.Proxy.Dialer = true, tap
	cfg.Consumer.MaxWaitTime = SaramaMaxWait
	cfg.Consumer.Group.Session.Timeout = SaramaSessionTimeout
	cfg.Consumer.Group.Heartbeat.Interval = SaramaHeartbeat
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Interval = time.Second
	cfg.Consumer.Return.Errors = false

	group, err := sarama.NewConsumerGroup([]string{o.Bootstrap}, o.Group, cfg)
	if err != nil {
		return GroupRun{}, err
	}
	adm, err := kgo.NewClient(kgo.SeedBrokers(o.Broker))
	if err != nil {
		group.Close()
		return GroupRun{}, err
	}
	defer adm.Close()

	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	h := &idleHandler{commit: o.Commit}
	consumed := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := group.Consume(ctx, []string{o.Topic}, h); err != nil {
				consumed <- err
				return
			}
		}
		consumed <- nil
	}()

	members := map[string]bool{}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		groups, err := kadm.NewClient(adm).DescribeGroups(dctx, o.Group)
		dcancel()
		if err != nil {
			continue
		}
		for _, g := range groups {
			for _, m := range g.Members {
				members[m.MemberID] = true
			}
		}
	}
	cerr := <-consumed
	if err := group.Close(); err != nil && cerr == nil {
		cerr = err
	}
	if cerr != nil {
		return GroupRun{}, fmt.Errorf("consume: %w", cerr)
	}
	if len(members) == 0 {
		return GroupRun{}, fmt.Errorf("group %s: %w", o.Group, errNoMember)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return GroupRun{
		Rebalances:         len(members) - 1,
		MemberIDs:          len(members),
		Sessions:           h.sessions,
		HeartbeatLatencies: tap.Latencies(12),
		CommitLatencies:    tap.Latencies(8),
		MaxHeartbeatGap:    tap.MaxGap(12),
		HeartbeatAnswered:  tap.Answered(12),
	}, nil
}

type idleHandler struct {
	commit   bool
	mu       sync.Mutex
	sessions int
}

func (h *idleHandler) Setup(sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	h.sessions++
	h.mu.Unlock()
	return nil
}

func (h *idleHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// ConsumeClaim waits on the idle partition; with commit set it marks a
// changing offset every second, so that sarama's auto-commit sends an
// OffsetCommit each interval.
func (h *idleHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := int64(0); ; i++ {
		select {
		case _, ok := <-c.Messages():
			if !ok {
				return nil
			}
		case <-tick.C:
			if h.commit {
				s.ResetOffset(c.Topic(), c.Partition(), i%2, "")
				s.MarkOffset(c.Topic(), c.Partition(), i%2+1, "")
			}
		case <-s.Context().Done():
			return nil
		}
	}
}

// Percentile of a set of durations (nearest rank); 0 for none.
func Percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i, 1)-1]
}
