// Package upstream owns the connections to the Kafka brokers: dialing, the
// broker address table, and lanes (one pipelined connection per session and
// group).
package upstream

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
)

// Dialer opens connections to brokers. TLS and SASL wrap here, so that every
// lane is ready for client requests when Dial returns.
type Dialer struct {
	// Timeout bounds one dial: connect, TLS handshake and SASL together.
	Timeout time.Duration

	tls    *clientTLS // nil: plaintext
	sasl   *saslAuth  // nil: no SASL
	log    *zap.Logger
	status authStatus
	// Backoff, when set, refuses dials to a broker whose last dials
	// failed, for a while (backoff.go).
	Backoff *Backoff
	// pool, when upstream.pool.max_idle_per_broker is set, hands Dial
	// connections dialed ahead (pool.go).
	pool *Pool
}

// NewDialer builds the dialer of cfg, reading the TLS files and checking
// the SASL secrets once so that a bad path fails at start-up.
func NewDialer(cfg config.Upstream, log *zap.Logger) (*Dialer, error) {
	d := &Dialer{Timeout: cfg.DialTimeout, log: log}
	if cfg.TLS.Enabled {
		t, err := newClientTLS(cfg.TLS)
		if err != nil {
			return nil, err
		}
		d.tls = t
	}
	a, err := newSASLAuth(cfg.SASL)
	if err != nil {
		return nil, err
	}
	d.sasl = a
	if cfg.Pool.MaxIdlePerBroker > 0 {
		d.pool = newPool(d.dial, cfg.Pool.MaxIdlePerBroker, cfg.Pool.IdleTimeout)
	}
	return d, nil
}

// InstrumentPool has the warm pool report its size, hits and misses; a
// no-op when the pool is off.
func (d *Dialer) InstrumentPool(idle prometheus.Gauge, hits, misses prometheus.Counter) {
	if d.pool != nil {
		d.pool.idleGauge, d.pool.hits, d.pool.misses = idle, hits, misses
	}
}

// Close closes the warm pool's connections; Dial keeps working, without it.
func (d *Dialer) Close() {
	if d.pool != nil {
		d.pool.Close()
	}
}

// Dial returns a connection to addr that is ready for client requests: one
// from the warm pool when it has one, else dialed now (see dial).
func (d *Dialer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	if d.pool != nil {
		if conn := d.pool.take(addr); conn != nil {
			return conn, nil
		}
	}
	return d.dial(ctx, addr)
}

// dial connects to addr within the dialer's timeout and, when configured,
// completes the TLS handshake and SASL authentication.
func (d *Dialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	if err := d.Backoff.allow(addr); err != nil {
		return nil, err
	}
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	nd := net.Dialer{KeepAlive: 30 * time.Second}
	conn, err := nd.DialContext(ctx, "tcp", addr)
	if ctx.Err() == nil {
		d.Backoff.record(addr, err)
	}
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if d.tls != nil {
		tc := tls.Client(conn, d.tls.config(addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			err = fmt.Errorf("tls handshake with broker %s: %w", addr, err)
			d.failed(addr, err)
			return nil, err
		}
		conn = tc
	}
	if d.sasl == nil {
		if d.tls != nil {
			d.succeeded(addr)
		}
		return conn, nil
	}
	lifetime, err := d.sasl.authenticate(ctx, addr, func(ctx context.Context, req kmsg.Request, resp kmsg.Response) error {
		return roundTrip(ctx, conn, req, resp, d.Timeout)
	})
	if err != nil {
		_ = conn.Close()
		d.failed(addr, err)
		return nil, err
	}
	d.succeeded(addr)
	if lifetime > 0 {
		return &authConn{Conn: conn, dialer: d, addr: addr, lifetime: lifetime, at: time.Now()}, nil
	}
	return conn, nil
}

// authConn is a connection whose SASL session expires (KIP-368). NewLane
// unwraps it and re-authenticates before the lifetime runs out; a caller
// that only round-trips one request can use it as a plain net.Conn.
type authConn struct {
	net.Conn
	dialer   *Dialer
	addr     string
	lifetime time.Duration
	at       time.Time
}

// authStatus remembers which brokers the proxy currently fails to
// authenticate to (TLS or SASL), for readiness.
type authStatus struct {
	mu      sync.Mutex
	failing map[string]error
	last    error
}

func (d *Dialer) failed(addr string, err error) {
	d.status.mu.Lock()
	if d.status.failing == nil {
		d.status.failing = map[string]error{}
	}
	d.status.failing[addr] = err
	d.status.last = err
	d.status.mu.Unlock()
	if d.log == nil {
		return
	}
	fields := []zap.Field{zap.String("upstream", addr), zap.Error(err)}
	msg := "upstream tls handshake failed"
	if ae, ok := err.(*AuthError); ok {
		msg = "upstream authentication failed"
		fields = append(fields, zap.String("user", ae.User), zap.String("mechanism", ae.Mechanism))
	}
	d.log.Error(msg, fields...)
}

func (d *Dialer) succeeded(addr string) {
	d.status.mu.Lock()
	defer d.status.mu.Unlock()
	if _, ok := d.status.failing[addr]; !ok {
		return
	}
	delete(d.status.failing, addr)
	if d.log != nil {
		d.log.Info("upstream authentication recovered", zap.String("upstream", addr))
	}
	d.status.last = nil
	for _, err := range d.status.failing {
		d.status.last = err // another broker still fails
		break
	}
}

// AuthError returns the latest TLS or SASL failure while some broker still
// fails, nil when every broker the proxy reached last accepted it.
func (d *Dialer) AuthError() error {
	d.status.mu.Lock()
	defer d.status.mu.Unlock()
	return d.status.last
}

// Brokers is the table of upstream broker addresses by node id, learned from
// metadata at start-up and from every response the proxy rewrites.
type Brokers struct {
	mu    sync.RWMutex
	addrs map[int32]string
	seeds []string
	next  uint32
}

// NewBrokers starts a table with the configured seed brokers.
func NewBrokers(seeds []string) *Brokers {
	return &Brokers{addrs: map[int32]string{}, seeds: seeds}
}

// Set records the address of node id; it reports whether the address is new
// or changed.
func (b *Brokers) Set(nodeID int32, addr string) bool {
	b.mu.RLock()
	old, ok := b.addrs[nodeID]
	b.mu.RUnlock()
	if ok && old == addr {
		return false
	}
	b.mu.Lock()
	b.addrs[nodeID] = addr
	b.mu.Unlock()
	return true
}

// Addr returns the address of node id.
func (b *Brokers) Addr(nodeID int32) (string, error) {
	b.mu.RLock()
	addr, ok := b.addrs[nodeID]
	b.mu.RUnlock()
	if !ok {
		return "", fmt.Errorf("broker %d: address unknown", nodeID)
	}
	return addr, nil
}

// Seeds returns the seed list rotated by one on each call, so that bootstrap
// sessions spread over the seeds and a dead seed is not always first.
func (b *Brokers) Seeds() []string {
	b.mu.Lock()
	n := len(b.seeds)
	start := int(b.next) % max(n, 1)
	b.next++
	b.mu.Unlock()
	out := make([]string, 0, n)
	out = append(out, b.seeds[start:]...)
	return append(out, b.seeds[:start]...)
}
