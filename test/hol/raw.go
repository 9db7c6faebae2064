package hol

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/internal/rawclient"
)

// RawOptions describe one run of a raw single-socket consumer: a long-poll
// Fetch always outstanding, and every second a Heartbeat and an
// OffsetCommit pipelined behind it, all on one connection.
type RawOptions struct {
	Addr     string // the partition leader, direct or through kproxy
	Topic    string
	MaxWait  time.Duration
	Duration time.Duration
	// Strict makes the client fail on an answer out of request order, as
	// Java, sarama, kgo and kafka-python do; otherwise it matches answers by
	// correlation id, as librdkafka and KafkaJS do.
	Strict bool
}

// RawRun is what a raw run saw.
type RawRun struct {
	HeartbeatLatencies, CommitLatencies []time.Duration
	HeartbeatAnswered                   []time.Time // when each Heartbeat answer arrived
	Fetches                             int
}

type rawPending struct {
	key int16
	at  time.Time
}

// RunRaw runs a raw single-socket consumer and times the answers.
func RunRaw(ctx context.Context, o RawOptions) (RawRun, error) {
	conn, err := net.DialTimeout("tcp", o.Addr, 5*time.Second)
	if err != nil {
		return RawRun{}, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()

	var (
		mu      sync.Mutex
		corr    int32
		order   []int32 // sent, unanswered, in request order
		pending = map[int32]rawPending{}
		run     RawRun
	)
	send := func(req kmsg.Request) error {
		mu.Lock()
		defer mu.Unlock()
		corr++
		pending[corr] = rawPending{key: req.Key(), at: time.Now()}
		order = append(order, corr)
		_, err := conn.Write(rawclient.EncodeRequest(req, corr, "raw-hol"))
		return err
	}
	fetch := func() error { return send(rawclient.FetchRequest(o.Topic, 0, o.MaxWait)) }

	readErr := make(chan error, 1)
	go func() {
		var hdr [8]byte
		for {
			if _, err := io.ReadFull(conn, hdr[:]); err != nil {
				readErr <- err
				return
			}
			now := time.Now()
			got := int32(binary.BigEndian.Uint32(hdr[4:]))
			if _, err := io.CopyN(io.Discard, conn, int64(binary.BigEndian.Uint32(hdr[:4]))-4); err != nil {
				readErr <- err
				return
			}
			mu.Lock()
			p, ok := pending[got]
			if !ok || o.Strict && order[0] != got {
				mu.Unlock()
				readErr <- fmt.Errorf("answer %d out of request order (next owed: %v)", got, order[:1])
				return
			}
			delete(pending, got)
			for i, c := range order {
				if c == got {
					order = append(order[:i], order[i+1:]...)
					break
				}
			}
			switch p.key {
			case 1:
				run.Fetches++
			case 12:
				run.HeartbeatLatencies = append(run.HeartbeatLatencies, now.Sub(p.at))
				run.HeartbeatAnswered = append(run.HeartbeatAnswered, now)
			case 8:
				run.CommitLatencies = append(run.CommitLatencies, now.Sub(p.at))
			}
			mu.Unlock()
			if p.key == 1 && ctx.Err() == nil {
				if err := fetch(); err != nil {
					readErr <- err
					return
				}
			}
		}
	}()

	if err := fetch(); err != nil {
		return RawRun{}, err
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-readErr:
			return RawRun{}, err
		case <-ctx.Done():
			// Let the answers owed arrive (bounded by the long poll).
			_ = conn.SetReadDeadline(time.Now().Add(o.MaxWait + 5*time.Second))
			for {
				mu.Lock()
				left := len(pending)
				mu.Unlock()
				if left == 0 {
					break
				}
				select {
				case err := <-readErr:
					return RawRun{}, fmt.Errorf("draining: %w", err)
				case <-time.After(10 * time.Millisecond):
				}
			}
			mu.Lock()
			defer mu.Unlock()
			return run, nil
		case <-tick.C:
			hb := kmsg.NewPtrHeartbeatRequest()
			hb.Group, hb.MemberID, hb.Generation = "raw-hol", "m", 1
			oc := kmsg.NewPtrOffsetCommitRequest()
			oc.Group, oc.Generation = "raw-hol", -1
			t := kmsg.NewOffsetCommitRequestTopic()
			t.Topic = o.Topic
			p := kmsg.NewOffsetCommitRequestTopicPartition()
			p.Offset = 0
			t.Partitions = append(t.Partitions, p)
			oc.Topics = append(oc.Topics, t)
			if err := send(hb); err != nil {
				return RawRun{}, err
			}
			if err := send(oc); err != nil {
				return RawRun{}, err
			}
		}
	}
}
