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

	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/bridge"
	"github.com/kproxy/kproxy/internal/budget"
	"github.com/kproxy/kproxy/internal/bufpool"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/upstream"
)

// bootstrapNode marks sessions on the bootstrap port: they reach any seed.
const bootstrapNode = -1

// Server is the proxy: its listeners, the broker table and every session.
type Server struct {
	cfg     config.Config
	log     *zap.Logger
	metrics *metrics.Metrics
	dialer  *upstream.Dialer
	brokers *upstream.Brokers
	// policy is what new sessions take (request_policy.go, reload.go).
	policy   atomic.Pointer[requestPolicy]
	ordering atomic.Pointer[orderingPolicy] // replaced by Reload (reload.go)
	pool     *bufpool.Pool
	budget   *budget.Budget // limits.max_buffered_bytes
	// overdraft is held by the one version-bridge translation that may
	// hold more than the budget gives it (pooledFrame).
	overdraft chan struct{}
	laneOpts  upstream.LaneOptions
	upstreams *upstream.Pool // ready upstream connections of closed sessions; nil: off
	lim       *limits
	bindHost  string
	tls       *tls.Config // listen.tls; nil: plaintext

	mu        sync.Mutex
	listeners map[int32]net.Listener // by node id; bootstrapNode for the bootstrap port
	held      heldPort               // the bootstrap port until ready (heldport.go)
	sessions  map[*session]struct{}
	closing   bool

	ready    atomic.Bool           // upstream metadata fetched at least once
	discErr  atomic.Pointer[error] // the last failed discovery, until one succeeds
	accepts  sync.WaitGroup
	sessWG   sync.WaitGroup
	stopOnce sync.Once
	stopped  chan struct{}

	leaving atomic.Bool // a stop has begun (drain.go): not ready
	// clientsChanged wakes WaitForClients when a client connection opens
	// or closes.
	clientsChanged chan struct{}
	// refreshWanted asks watchCluster (cluster.go) for a metadata fetch.
	refreshWanted chan struct{}
	// liveLimits are the limits as last reloaded (reload.go).
	liveLimits atomic.Pointer[config.Limits]
	// settingsChanged tells watchCluster that a reload changed settings.
	settingsChanged chan struct{}
	upstreamSec     upstreamSecurity // as last applied (reload.go)
	// brokerAPIs is what the brokers accept, from the last discovery: the
	// version bridge's targets (bridge.go).
	brokerAPIs atomic.Pointer[bridge.Broker]
	// floorsSeen: a broker refused a version Kafka 4.0 removed and lists
	// 4.0's floors (checkFloors); floorChecks: the brokers being asked.
	floorsSeen  atomic.Bool
	floorChecks sync.Map
}

// New builds a server from a validated configuration.
func New(cfg config.Config, log *zap.Logger, m *metrics.Metrics) (*Server, error) {
	ordering, err := newOrderingPolicy(cfg.Routing)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(cfg.Listen.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("listen.bootstrap: %w", err)
	}
	pool := bufpool.New()
	dialer, err := upstream.NewDialer(cfg.Upstream, log, tlsReloadFailed(log, m))
	if err != nil {
		return nil, err
	}
	dialer.Backoff = upstream.NewBackoff(cfg.Upstream.DialBackoffMax)
	serverTLS, err := newServerTLS(cfg.Listen.TLS, tlsReloadFailed(log, m))
	if err != nil {
		return nil, err
	}
	users, err := loadUsers(cfg.Listen.SASL)
	if err != nil {
		return nil, err
	}
	policy, err := newRequestPolicy(cfg, m, users)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		log:       log,
		metrics:   m,
		dialer:    dialer,
		brokers:   upstream.NewBrokers(cfg.Upstream.BootstrapServers),
		pool:      pool,
		bindHost:  host,
		tls:       serverTLS,
		listeners: map[int32]net.Listener{},
		sessions:  map[*session]struct{}{},
		stopped:   make(chan struct{}),
		lim:       newLimits(log, m),
		upstreams: upstream.NewPool(cfg.Upstream.Pool.MaxIdlePerBroker, cfg.Upstream.Pool.IdleTimeout, cfg.Upstream.Pool.MaxAge, m),

		clientsChanged: make(chan struct{}, 1),
		refreshWanted:  make(chan struct{}, 1),

		settingsChanged: make(chan struct{}, 1),
	}
	s.ordering.Store(ordering)
	s.policy.Store(policy)
	s.liveLimits.Store(&cfg.Limits)
	s.upstreamSec = upstreamSecurity{cfg.Upstream.TLS, cfg.Upstream.SASL}
	dialer.OnFailure = s.wantRefresh
	s.overdraft = make(chan struct{}, 1)
	s.budget = budget.New(int64(cfg.Limits.MaxBufferedBytes), m.BufferedBytes, func() {
		s.lim.hit(metrics.LimitMaxBufferedBytes, zap.Int("max_buffered_bytes", cfg.Limits.MaxBufferedBytes))
	})
	s.laneOpts = upstream.LaneOptions{
		Pool:          pool,
		MaxFrameBytes: cfg.Limits.MaxFrameBytes,
		IdleTimeout:   cfg.Upstream.IdleTimeout,
		BytesIn:       m.Bytes.WithLabelValues(metrics.UpstreamIn),
		BytesOut:      m.Bytes.WithLabelValues(metrics.UpstreamOut),
	}
	return s, nil
}

// Start binds the bootstrap port and begins discovering brokers: one
// listener per broker named in the upstream metadata. Discovery retries in
// the background until it succeeds, so the proxy comes up even while every
// seed is unreachable (Ready reports false meanwhile), and then keeps the
// view of the cluster fresh until the server stops (cluster.go). The
// bootstrap port accepts clients once the first discovery succeeds; until
// then connecting to it is refused (heldport.go).
func (s *Server) Start(ctx context.Context) error {
	s.warnInsecure()
	held, err := holdPort(s.cfg.Listen.Bootstrap)
	if err != nil {
		return fmt.Errorf("listen.bootstrap (%s) %q: %w", config.EnvVar("listen.bootstrap"), s.cfg.Listen.Bootstrap, err)
	}
	s.mu.Lock()
	s.held = held
	s.mu.Unlock()
	s.watchStalls()

	err = s.discover(ctx)
	if err != nil {
		s.log.Warn("upstream metadata unavailable, retrying", zap.Error(err))
	}
	s.watchCluster(err == nil)
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
	s.openBootstrap()
	return nil
}

// openBootstrap starts accepting clients on the held bootstrap port.
func (s *Server) openBootstrap() {
	s.mu.Lock()
	held := s.held
	s.held = nil
	if held == nil || s.closing {
		s.mu.Unlock()
		return
	}
	ln, err := held.Listen()
	if err != nil {
		s.mu.Unlock()
		s.log.Error("bootstrap listener failed", zap.Error(err))
		return
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.listeners[bootstrapNode] = ln
	s.mu.Unlock()
	s.log.Info("listening", zap.String("listener", "bootstrap"), zap.String("addr", ln.Addr().String()))
	s.serve(ln, bootstrapNode)
}

// Ready reports whether the latest fetch of upstream metadata succeeded
// (every broker it named has a listener), the server is not shutting down,
// and no broker of the cluster currently refuses the proxy's TLS handshake
// or SASL credentials.
func (s *Server) Ready() bool {
	return s.ready.Load() && s.discErr.Load() == nil && !s.stopping() && s.dialer.AuthError() == nil
}

// NotReadyReason says in a few words why Ready is false ("" when it is
// true): shutting down, the current upstream authentication (TLS or SASL)
// failure, or the last error fetching upstream metadata.
func (s *Server) NotReadyReason() string {
	switch {
	case s.Ready():
		return ""
	case s.stopping():
		return "shutting down"
	}
	if err := s.dialer.AuthError(); err != nil {
		return "upstream authentication failing: " + withoutUsers(err)
	}
	p := s.discErr.Load()
	if p == nil {
		return "upstream metadata not fetched yet"
	}
	msg := strings.ReplaceAll(withoutUsers(*p), "\n", "; ") // a joined error has one line per seed
	if s.ready.Load() {
		return "upstream cluster unreachable: no known broker answered metadata (" + msg + ")"
	}
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

func (s *Server) stopping() bool { return s.leaving.Load() || isClosed(s.stopped) }

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
		if id >= 0 {
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
	if id == bootstrapNode && s.held != nil {
		return s.held.Addr().String()
	}
	return ""
}

// Advertise implements router.AddressMap: it records the upstream address
// of a broker and makes sure the broker's client-facing listener exists
// before the response naming it leaves the proxy.
func (s *Server) Advertise(nodeID int32, host string, port int32) (string, int32, error) {
	listenPort, ok := s.cfg.Listen.BrokerPorts[nodeID]
	if !ok && s.cfg.Listen.BrokerPortBase != 0 {
		listenPort = s.cfg.Listen.BrokerPortBase + int(nodeID)
	}
	return s.advertise("broker", nodeID, nodeID, listenPort, host, port,
		fmt.Sprintf("listen.broker_port_base %d + node id is outside 1..65535; set listen.broker_ports", s.cfg.Listen.BrokerPortBase))
}

// AdvertiseController implements router.AddressMap for KRaft controllers
// (DescribeCluster EndpointType 2): their listeners and upstream addresses
// are kept apart from the brokers', so a node that is both never shares a
// port.
func (s *Server) AdvertiseController(nodeID int32, host string, port int32) (string, int32, error) {
	listenPort := 0
	if s.cfg.Listen.ControllerPortBase != 0 {
		listenPort = s.cfg.Listen.ControllerPortBase + int(nodeID)
	}
	return s.advertise("controller", nodeID, controllerKey(nodeID), listenPort, host, port,
		fmt.Sprintf("listen.controller_port_base %d + node id is outside 1..65535", s.cfg.Listen.ControllerPortBase))
}

// controllerKey is where a controller is kept in the listener and upstream
// address tables, whose non-negative keys are broker ids and whose -1 is
// the bootstrap port.
func controllerKey(nodeID int32) int32 { return -2 - nodeID }

// controllerOf is the controller id a table key stands for, if it is one.
func controllerOf(key int32) (int32, bool) { return -2 - key, key < bootstrapNode }

func (s *Server) advertise(kind string, nodeID, key int32, listenPort int, host string, port int32, noPort string) (string, int32, error) {
	upstreamAddr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	if s.brokers.Set(key, upstreamAddr) {
		s.log.Info(kind+" discovered", zap.Int32(kind, nodeID), zap.String("upstream", upstreamAddr))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ln, ok := s.listeners[key]; ok {
		return s.cfg.Listen.AdvertisedHost, int32(ln.Addr().(*net.TCPAddr).Port), nil
	}
	if s.closing {
		return "", 0, errors.New("proxy is shutting down")
	}
	if nodeID < 0 || listenPort > 65535 {
		return "", 0, fmt.Errorf("%s %d: no client port: %s", kind, nodeID, noPort)
	}
	ln, err := s.listen(net.JoinHostPort(s.bindHost, strconv.Itoa(listenPort)))
	if err != nil {
		return "", 0, fmt.Errorf("%s %d: listen: %w", kind, nodeID, err)
	}
	s.listeners[key] = ln
	s.log.Info("listening", zap.String("listener", kind), zap.Int32(kind, nodeID), zap.String("addr", ln.Addr().String()))
	s.serve(ln, key)
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
	s.noteClients()
	go sess.run()
}

func (s *Server) endSession(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.metrics.ClientConnections.Dec()
	s.noteClients()
	s.sessWG.Done()
}

// Shutdown stops accepting, lets every session finish the requests it has
// in flight, and closes what is left when ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stopped) })
	s.mu.Lock()
	s.closing = true
	for _, ln := range s.listeners {
		_ = ln.Close()
	}
	if s.held != nil {
		_ = s.held.Close()
		s.held = nil
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
		s.upstreams.Close()
		s.dialer.Close()
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for sess := range s.sessions {
		go sess.close(reasonShutdown, errors.New("shutdown timeout"))
	}
	s.mu.Unlock()
	<-done
	s.upstreams.Close()
	s.dialer.Close()
	return fmt.Errorf("shutdown: %w; sessions with requests still in flight were closed", ctx.Err())
}
