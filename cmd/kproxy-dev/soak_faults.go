package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// soakFaults are injected in turn, one every --fault-every.
var soakFaults = []struct {
	name   string
	inject func(s *soak, rng *rand.Rand)
}{
	{"drop-connection", (*soak).dropConnection},
	{"move-leader", (*soak).moveLeader},
	{"slow-broker", (*soak).slowBroker},
	{"shuffle-leaders", func(s *soak, _ *rand.Rand) { s.cluster.ShufflePartitionLeaders() }},
	{"move-coordinators", func(s *soak, _ *rand.Rand) { s.cluster.RehashCoordinators() }},
	{"restart-broker", (*soak).restartBroker},
}

// injectFaults runs until ctx ends, and then disarms what it armed: the
// soak reads the topics back straight from the cluster, and a connection
// drop still waiting for its key would fail that read instead of the load.
func (s *soak) injectFaults(ctx context.Context) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	t := time.NewTicker(s.faultEvery)
	defer t.Stop()
	defer s.faultsOver.Store(true)
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f := soakFaults[i%len(soakFaults)]
		f.inject(s, rng)
		n, _ := s.faults.LoadOrStore(f.name, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
}

// dropConnection makes a broker close the connection carrying the next
// request of one group's key, with the request in flight.
func (s *soak) dropConnection(rng *rand.Rand) {
	keys := []kmsg.Key{kmsg.Produce, kmsg.Fetch, kmsg.JoinGroup, kmsg.SyncGroup, kmsg.OffsetCommit, kmsg.Heartbeat, kmsg.Metadata, kmsg.FindCoordinator}
	s.dropNext(keys[rng.IntN(len(keys))])
}

// dropNext arms one connection drop for key; once the faults are over it
// lets the request through and goes away.
func (s *soak) dropNext(key kmsg.Key) {
	s.cluster.ControlKey(int16(key), func(kmsg.Request) (kmsg.Response, error, bool) {
		if s.faultsOver.Load() {
			s.cluster.DropControl()
			return nil, nil, false
		}
		return nil, errors.New("soak: injected connection drop"), true
	})
}

func (s *soak) moveLeader(rng *rand.Rand) {
	topic := soakKgoTopic
	if rng.IntN(2) == 1 {
		topic = soakSaramaTopic
	}
	_ = s.cluster.MoveTopicPartition(topic, rng.Int32N(soakPartitions), rng.Int32N(3))
}

// slowBroker delays every request to one broker by 100ms for two seconds,
// and holds one of them past the proxy's answer grace.
func (s *soak) slowBroker(rng *rand.Rand) {
	node := rng.Int32N(3)
	until := time.Now().Add(2 * time.Second)
	var stuck atomic.Bool
	s.cluster.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		if time.Now().After(until) || s.faultsOver.Load() {
			s.cluster.DropControl()
			return nil, nil, false
		}
		if s.cluster.CurrentNode() != node {
			return nil, nil, false
		}
		d := 100 * time.Millisecond
		if req.Key() == int16(kmsg.Metadata) && stuck.CompareAndSwap(false, true) {
			d = 7 * time.Second // past limits.upstream_answer_grace (5s)
		}
		s.cluster.SleepControl(func() { time.Sleep(d) })
		return nil, nil, false
	})
}

// restartBroker takes broker 2 away, with its connections, for a second
// and brings it back on the same port, as a broker process restart would.
func (s *soak) restartBroker(*rand.Rand) {
	addr := s.cluster.ListenAddrs()[2]
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	if s.cluster.RemoveNode(2) != nil {
		return
	}
	s.conns.Kill(addr)
	time.Sleep(time.Second)
	_, _, _ = s.cluster.AddNode(2, port)
}

func sortedStrings(in []string) []string {
	sort.Strings(in)
	return in
}
