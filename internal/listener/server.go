// Package listener accepts client connections on the bootstrap port and on
// one port per upstream broker, and owns the sessions that serve them.
package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/auth"
	"github.com/kproxy/kproxy/internal/bufpool"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/router"
	"github.com/kproxy/kproxy/internal/upstream"
)

// bootstrapNode marks sessions on the bootstrap port: they reach any seed.
const bootstrapNode = -1

// Server is the proxy: its listeners, the broker table and every session.
type Server struct {
	cfg        config.Config
	log        *zap.Logger
	metrics    *metrics.Metrics
	instr      *instruments
	dialer     *upstream.Dialer
	brokers    *upstream.Brokers
	protocol   *router.Protocol
	classifier *router.Classifier
	ordering   *orderingPolicy
	rewriter   *router.Rewriter
	pool       *bufpool.Pool
	laneOpts   upstream.LaneOptions
	lim        *limits
	bindHost   string
	tls        *tls.Config // listen.tls; nil: plaintext
	users      *auth.Users // listen.sasl.mode terminate; nil: reject

	mu        sync.Mutex
	listeners map[int32]net.Listener // by node id; bootstrapNode for the bootstrap port
	sessions  map[*session]struct{}
	closing   bool

	ready    atomic.Bool           // upstream metadata fetched at least once
	discErr  atomic.Pointer[error] // the last failed discovery, until one succeeds
	accepts  sync.WaitGroup
	sessWG   sync.WaitGroup
	stopOnce sync.Once
	stopped  chan struct{}
}

// New builds a server from a validated configuration.
func New(cfg config.Config, log *zap.Logger, m *metrics.Metrics) (*Server, error) {
	protocol := router.NewProtocol()
	classifier, err := router.NewClassifier(protocol, cfg.Routing.Groups)
	if err != nil {
		return nil, fmt.Errorf("routing.groups: %w", err)
	}
	ordering, err := newOrderingPolicy(cfg.Routing)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(cfg.Listen.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("listen.bootstrap: %w", err)
	}
	pool := bufpool.New()
	dialer, err := upstream.NewDialer(cfg.Upstream, log)
	if err != nil {
		return nil, err
	}
	dialer.Backoff = upstream.NewBackoff(cfg.Upstream.DialBackoffMax)
	dialer.InstrumentPool(m.PoolIdle, m.PoolHits, m.PoolMisses)
	serverTLS, err := newServerTLS(cfg.Listen.TLS)
	if err != nil {
		return nil, err
	}
	users, err := loadUsers(cfg.Listen.SASL)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:        cfg,
		log:        log,
		metrics:    m,
		instr:      newInstruments(m, protocol, classifier),
		dialer:     dialer,
		brokers:    upstream.NewBrokers(cfg.Upstream.BootstrapServers),
		protocol:   protocol,
		classifier: classifier,
		ordering:   ordering,
		rewriter:   router.NewRewriter(protocol),
		pool:       pool,
		bindHost:   host,
		tls:        serverTLS,
		users:      users,
		listeners:  map[int32]net.Listener{},
		sessions:   map[*session]struct{}{},
		stopped:    make(chan struct{}),
		lim:        newLimits(log, m),
	}
	if users != nil {
		s.rewriter.AdvertiseSASL()
	}
	s.laneOpts = upstream.LaneOptions{
		Pool:          pool,
		MaxFrameBytes: cfg.Limits.MaxFrameBytes,
		IdleTimeout:   cfg.Upstream.IdleTimeout,
		BytesIn:       m.Bytes.WithLabelValues(metrics.UpstreamIn),
		BytesOut:      m.Bytes.WithLabelValues(metrics.UpstreamOut),
	}
	return s, nil
}

// Start binds the bootstrap listener and begins discovering brokers: one
// listener per broker named in the upstream metadata. Discovery retries in
// the background until it succeeds or the server stops, so the proxy comes
// up even while every seed is unreachable (Ready reports false meanwhile).
func (s *Server) Start(ctx context.Context) error {
	s.warnInsecure()
	ln, err := s.listen(s.cfg.Listen.Bootstrap)
	if err != nil {
		return fmt.Errorf("listen.bootstrap (%s) %q: %w", config.EnvVar("listen.bootstrap"), s.cfg.Listen.Bootstrap, err)
	}
	s.mu.Lock()
	s.listeners[bootstrapNode] = ln
	s.mu.Unlock()
	s.log.Info("listening", zap.String("listener", "bootstrap"), zap.String("addr", ln.Addr().String()))
	s.serve(ln, bootstrapNode)
	s.watchStalls()

	if err := s.discover(ctx); err == nil {
		return nil
	} else {
		s.log.Warn("upstream metadata unavailable, retrying", zap.Error(err))
	}
	s.accepts.Add(1)
	go func() {
		defer s.accepts.Done()
		for delay := 250 * time.Millisecond; ; delay = min(2*delay, 10*time.Second) {
			select {
			case <-s.stopped:
				return
			case <-time.After(delay):
			}
			if err := s.discover(ctx); err == nil {
				return
			} else {
				s.log.Warn("upstream metadata unavailable, retrying", zap.Error(err))
			}
		}
	}()
	return nil
}

func (s *Server) discover(ctx context.Context) error {
	err := s.fetchAndListen(ctx)
	if err != nil {
		s.discErr.Store(&err)
		return err
	}
	s.discErr.Store(nil)
	s.ready.Store(true)
	return nil
}

func (s *Server) fetchAndListen(ctx context.Context) error {
	brokers, err := s.dialer.FetchBrokers(ctx, s.brokers.Seeds())
	if err != nil {
		return err
	}
	for _, b := range brokers {
		if _, _, err := s.Advertise(b.NodeID, b.Host, b.Port); err != nil {
			return err
		}
	}
	return nil
}

// Ready reports whether upstream metadata has been fetched and every known
// broker has a listener, the server is not shutting down, and no broker
// currently refuses the proxy's TLS handshake or SASL credentials.
func (s *Server) Ready() bool {
	return s.ready.Load() && !isClosed(s.stopped) && s.dialer.AuthError() == nil
}

// NotReadyReason says in a few words why Ready is false ("" when it is
// true): shutting down, the current upstream authentication (TLS or SASL)
// failure, or the last error fetching upstream metadata.
func (s *Server) NotReadyReason() string {
	switch {
	case s.Ready():
		return ""
	case isClosed(s.stopped):
		return "shutting down"
	}
	if err := s.dialer.AuthError(); err != nil {
		return "upstream authentication failing: " + err.Error()
	}
	p := s.discErr.Load()
	if p == nil {
		return "upstream metadata not fetched yet"
	}
	msg := strings.ReplaceAll((*p).Error(), "\n", "; ") // a joined error has one line per seed
	if unreachable(*p) {
		return "upstream metadata not fetched: every seed unreachable (" + msg + ")"
	}
	return "upstream metadata not fetched: " + msg
}

// unreachable reports whether err is, for every seed, a failure to connect.
func unreachable(err error) bool {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var op *net.OpError
		if !errors.As(e, &op) || op.Op != "dial" {
			return false
		}
	}
	return len(errs) > 0
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// BootstrapAddr is the bound bootstrap address.
func (s *Server) BootstrapAddr() string { return s.listenerAddr(bootstrapNode) }

// BrokerAddrs maps node ids to the bound client-facing address of each broker.
func (s *Server) BrokerAddrs() map[int32]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int32]string, len(s.listeners))
	for id, ln := range s.listeners {
		if id != bootstrapNode {
			out[id] = ln.Addr().String()
		}
	}
	return out
}

func (s *Server) listenerAddr(id int32) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ln, ok := s.listeners[id]; ok {
		return ln.Addr().String()
	}
	return ""
}

// Advertise implements router.AddressMap: it records the upstream address
// of a broker and makes sure the broker's client-facing listener exists
// before the response naming it leaves the proxy.
func (s *Server) Advertise(nodeID int32, host string, port int32) (string, int32, error) {
	if s.brokers.Set(nodeID, net.JoinHostPort(host, strconv.Itoa(int(port)))) {
		s.log.Info("broker discovered", zap.Int32("broker", nodeID), zap.String("upstream", net.JoinHostPort(host, strconv.Itoa(int(port)))))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ln, ok := s.listeners[nodeID]; ok {
		return s.cfg.Listen.AdvertisedHost, int32(ln.Addr().(*net.TCPAddr).Port), nil
	}
	if s.closing {
		return "", 0, errors.New("proxy is shutting down")
	}
	listenPort, ok := s.cfg.Listen.BrokerPorts[nodeID]
	if !ok && s.cfg.Listen.BrokerPortBase != 0 {
		listenPort = s.cfg.Listen.BrokerPortBase + int(nodeID)
	}
	if nodeID < 0 || listenPort > 65535 {
		return "", 0, fmt.Errorf("broker %d: no client port: listen.broker_port_base %d + node id is outside 1..65535; set listen.broker_ports", nodeID, s.cfg.Listen.BrokerPortBase)
	}
	ln, err := s.listen(net.JoinHostPort(s.bindHost, strconv.Itoa(listenPort)))
	if err != nil {
		return "", 0, fmt.Errorf("broker %d: listen: %w", nodeID, err)
	}
	s.listeners[nodeID] = ln
	s.log.Info("listening", zap.String("listener", "broker"), zap.Int32("broker", nodeID), zap.String("addr", ln.Addr().String()))
	s.serve(ln, nodeID)
	return s.cfg.Listen.AdvertisedHost, int32(ln.Addr().(*net.TCPAddr).Port), nil
}

func (s *Server) serve(ln net.Listener, nodeID int32) {
	s.accepts.Add(1)
	go func() {
		defer s.accepts.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					s.log.Warn("accept failed", zap.Int32("broker", nodeID), zap.Error(err))
				}
				return
			}
			s.startSession(conn, nodeID)
		}
	}()
}

func (s *Server) startSession(conn net.Conn, nodeID int32) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = conn.Close()
		return
	}
	if reason, fields := s.refusal(); reason != "" {
		s.mu.Unlock()
		s.lim.refuse(conn, reason, fields...)
		return
	}
	sess := newSession(s, conn, nodeID)
	s.sessions[sess] = struct{}{}
	s.sessWG.Add(1)
	s.mu.Unlock()
	s.metrics.ClientConnections.Inc()
	s.metrics.ClientConnectionsTotal.Inc()
	go sess.run()
}

func (s *Server) endSession(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.metrics.ClientConnections.Dec()
	s.sessWG.Done()
}

// Shutdown stops accepting, lets every session finish the requests it has
// in flight, and closes what is left when ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stopped) })
	defer s.dialer.Close()
	s.mu.Lock()
	s.closing = true
	for _, ln := range s.listeners {
		_ = ln.Close()
	}
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.drain()
	}
	done := make(chan struct{})
	go func() {
		s.sessWG.Wait()
		s.accepts.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for sess := range s.sessions {
		go sess.close(reasonShutdown, errors.New("shutdown timeout"))
	}
	s.mu.Unlock()
	<-done
	return fmt.Errorf("shutdown: %w; sessions with requests still in flight were closed", ctx.Err())
}
