package listener

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/kproxy/kproxy/internal/bridge"
)

// Refresh pacing: after a failed fetch kproxy retries from retryFirst,
// doubling up to retryMax; a failed dial asks for a fetch at most once per
// refreshMinGap.
const (
	retryFirst    = 250 * time.Millisecond
	retryMax      = 10 * time.Second
	refreshMinGap = time.Second
)

// watchCluster keeps kproxy's view of the cluster fresh until the server
// stops: it fetches the brokers every upstream.metadata_max_age and soon
// after a dial fails (Dialer.OnFailure), retrying with a backoff while
// every broker it knows is unreachable. discovered says whether Start's
// first fetch succeeded.
func (s *Server) watchCluster(discovered bool) {
	ctx, cancel := context.WithCancel(context.Background())
	s.accepts.Add(1)
	go func() {
		defer s.accepts.Done()
		defer cancel()
		retry := retryFirst
		next := time.NewTimer(s.cfg.Upstream.MetadataMaxAge)
		if !discovered {
			next.Reset(retry)
		}
		defer next.Stop()
		failing := !discovered
		for {
			select {
			case <-s.stopped:
				return
			case <-next.C:
			case <-s.refreshWanted:
				if failing {
					continue // already retrying on its own schedule
				}
			case <-s.settingsChanged: // a reload may have fixed what failed
			}
			err := s.discover(ctx)
			switch {
			case err == nil:
				failing, retry = false, retryFirst
				next.Reset(s.cfg.Upstream.MetadataMaxAge)
				// Dials failing in the meantime say nothing new.
				select {
				case <-s.refreshWanted:
				case <-time.After(refreshMinGap):
				case <-s.stopped:
					return
				}
			default:
				if ctx.Err() != nil {
					return
				}
				s.log.Warn("upstream metadata unavailable, retrying", zap.Error(err), zap.Duration("retry_in", retry))
				failing = true
				next.Reset(retry)
				retry = min(2*retry, retryMax)
			}
		}
	}()
	go func() {
		<-s.stopped
		cancel()
	}()
}

// wantRefresh asks watchCluster for a fetch of the brokers; it never
// blocks.
func (s *Server) wantRefresh(string) {
	select {
	case s.refreshWanted <- struct{}{}:
	default:
	}
}

// fetchAndListen fetches the brokers, gives every one its client port,
// closes the port of every broker that left since the last fetch, and
// forgets the authentication failures of brokers that are gone.
func (s *Server) fetchAndListen(ctx context.Context) error {
	found, err := s.dialer.FetchBrokers(ctx, s.brokers.Seeds())
	if err != nil {
		return err
	}
	brokers := found.Brokers
	if found.APIs != nil {
		b := bridge.NewBroker(found.APIs)
		s.brokerAPIs.Store(b)
		if s.floorsSeen.Load() && !b.EnforcesFloors() {
			s.brokerAPIs.CompareAndSwap(b, b.WithFloors()) // unless checkFloors already did
		}
	}
	if len(brokers) == 0 { // never from Kafka; closing every port on it would be wrong
		return errors.New("upstream metadata names no broker")
	}
	members := make(map[int32]string, len(brokers))
	for _, b := range brokers {
		if _, _, err := s.Advertise(b.NodeID, b.Host, b.Port); err != nil {
			return err
		}
		members[b.NodeID] = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
	}
	for _, id := range s.brokers.SetMembers(members) {
		s.closeBrokerPort(id)
	}
	s.dialer.ForgetAuthFailures(s.brokers.Current)
	return nil
}

// closeBrokerPort closes the client port of a broker that left the
// cluster: a client that still has it in its metadata is refused at once,
// rather than accepted and then cut when the dial fails. Open sessions go
// on; their next dial fails. A broker that comes back gets a port again
// from Advertise.
func (s *Server) closeBrokerPort(id int32) {
	s.mu.Lock()
	ln, ok := s.listeners[id]
	delete(s.listeners, id)
	s.mu.Unlock()
	if !ok {
		return
	}
	_ = ln.Close()
	s.log.Info("broker left the cluster: its client port is closed", zap.Int32("broker", id), zap.String("addr", ln.Addr().String()))
}

// floorCheckTimeout bounds checkFloors, which holds a session's close.
const floorCheckTimeout = 2 * time.Second

// checkFloors asks the broker at addr, which closed a connection with a
// request of api at version unanswered, one Kafka 4.0 removed, for its API
// versions: if it lists 4.0's floors, the bridge translates what 4.0
// removed from now on, for good. The broker that answered kproxy's
// ApiVersions at discovery (the first seed that answers) may be one not
// yet upgraded while others are (a rolling upgrade to 4.x); kproxy asks no
// other there, which would cost a connection to every broker at every
// discovery. A broker that closed the connection for another reason (a
// restart of a 3.x broker) lists no floors, and nothing changes. One check
// per broker at a time: sessions failing together do not queue on it.
func (s *Server) checkFloors(addr, api string, version int16) {
	if s.floorsSeen.Load() {
		return
	}
	if _, busy := s.floorChecks.LoadOrStore(addr, struct{}{}); busy {
		return
	}
	defer s.floorChecks.Delete(addr)
	ctx, cancel := context.WithTimeout(context.Background(), floorCheckTimeout)
	defer cancel()
	keys, err := s.dialer.ApiVersions(ctx, addr)
	if err != nil || !bridge.NewBroker(keys).EnforcesFloors() {
		return
	}
	if s.floorsSeen.Swap(true) {
		return
	}
	for {
		b := s.brokerAPIs.Load()
		if b == nil || b.EnforcesFloors() || s.brokerAPIs.CompareAndSwap(b, b.WithFloors()) {
			break
		}
	}
	s.log.Warn("a broker refused a request of a version Kafka 4.0 removed and lists Kafka 4's floors: kproxy bridges those versions from now on",
		zap.String("broker", addr), zap.String("api", api), zap.Int16("version", version))
}
