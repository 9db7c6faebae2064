package listener

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/internal/bufpool"
	"github.com/kproxy/kproxy/internal/router"
	"github.com/kproxy/kproxy/internal/upstream"
)

// A session's lanes: one per group, dialed (or taken from the upstream
// pool) on first use and again after closing idle, plus the lanes to group
// coordinators that old offset requests go on to (bridge.go).

// send forwards on the group's lane, dialing it on first use and again when
// the lane closed while idle.
func (s *session) send(g router.Group, frame *bufpool.Buf, corr int32, expect bool, owner *slot) error {
	for range 2 {
		lane, err := s.lane(g)
		if err != nil {
			s.srv.pool.Put(frame)
			return err
		}
		if s.tail.lr.N > 0 {
			// A group member heartbeats over this socket: its reader
			// must not wait on a broker busy with an earlier Produce.
			sent, err := lane.SendTail(frame, s, !s.gate.member, corr, expect, owner)
			switch {
			case sent && err != nil:
				return s.spliceFailed(err)
			case sent:
				return nil
			case errors.Is(err, upstream.ErrLaneClosed):
				s.dropLane(lane)
				continue
			}
			if frame, err = s.readTail(frame); err != nil {
				return err
			}
		}
		if err := lane.Send(frame, corr, expect, owner); !errors.Is(err, upstream.ErrLaneClosed) {
			return err
		}
		s.dropLane(lane)
	}
	s.srv.pool.Put(frame)
	return errors.New("upstream connection closed twice in a row while sending")
}

// lane returns the lane of group g, dialing it on first use. A g past the
// classifier's groups is a lane to a group coordinator other than the
// session's broker (redirects, bridge.go).
func (s *session) lane(g router.Group) (*upstream.Lane[*slot], error) {
	s.mu.Lock()
	var l *upstream.Lane[*slot]
	if int(g) < len(s.lanes) {
		l = s.lanes[g]
	}
	s.mu.Unlock()
	if l != nil {
		return l, nil
	}
	named, coordinator := s.laneGroup(g)
	var conn net.Conn
	var addr string
	var err error
	if coordinator {
		conn, addr, err = s.dialRedirect(s.redirects[int(g)-s.pol.classifier.Len()])
	} else {
		conn, addr, err = s.dial()
	}
	if err != nil {
		return nil, err
	}
	gauge := s.srv.metrics.UpstreamConnections.WithLabelValues(s.brokerLabel(), s.pol.classifier.Name(named))
	l = upstream.NewLane[*slot](s.srv.upstreams, conn, addr, s, &s.srv.laneOpts, gauge)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Release() // unused: back to the upstream pool
		return nil, errors.New("session closed")
	}
	for int(g) >= len(s.lanes) {
		s.lanes = append(s.lanes, nil)
	}
	s.lanes[g] = l
	s.mu.Unlock()
	s.log.Debug("lane dialed", zap.String("group", s.pol.classifier.Name(named)), zap.String("upstream", addr))
	return l, nil
}

// laneGroup is the group whose requests lane g carries: g itself, or, for a
// group coordinator's lane past the classifier's groups, the group of
// OffsetCommit and OffsetFetch (the requests sent there).
func (s *session) laneGroup(g router.Group) (named router.Group, coordinator bool) {
	if int(g) < s.pol.classifier.Len() {
		return g, false
	}
	return s.pol.classifier.Classify(int16(kmsg.OffsetCommit)), true
}

func (s *session) dial() (net.Conn, string, error) {
	ctx := context.Background()
	if s.broker != bootstrapNode {
		addr, err := s.srv.brokers.Addr(s.broker)
		if err != nil {
			return nil, "", err
		}
		if conn, _ := s.srv.upstreams.Take(addr); conn != nil {
			return conn, addr, nil
		}
		conn, err := s.srv.dialer.Dial(ctx, addr)
		if err != nil {
			s.dialFailed(err)
			return nil, addr, fmt.Errorf("dial broker %d at %s: %w", s.broker, addr, err)
		}
		return conn, addr, nil
	}
	seeds := s.srv.brokers.Seeds()
	if s.seed != "" {
		seeds = []string{s.seed}
	}
	if conn, addr := s.srv.upstreams.Take(seeds...); conn != nil {
		s.seed = addr
		return conn, addr, nil
	}
	var errs []error
	for _, addr := range seeds {
		conn, err := s.srv.dialer.Dial(ctx, addr)
		if err == nil {
			s.seed = addr
			return conn, addr, nil
		}
		s.dialFailed(err)
		errs = append(errs, fmt.Errorf("dial seed %s: %w", addr, err))
	}
	return nil, "", errors.Join(errs...)
}

func (s *session) brokerLabel() string {
	if s.broker == bootstrapNode {
		return "bootstrap"
	}
	if id, ok := controllerOf(s.broker); ok {
		return fmt.Sprintf("controller-%d", id)
	}
	return fmt.Sprint(s.broker)
}

func (s *session) dropLane(l *upstream.Lane[*slot]) (group router.Group, found bool) {
	s.mu.Lock()
	for g, cur := range s.lanes {
		if cur == l {
			s.lanes[g], group, found = nil, router.Group(g), true
		}
	}
	s.mu.Unlock()
	return group, found
}
