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
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/tlsfiles"
)

// Dialer opens connections to brokers. TLS and SASL wrap here, so that every
// lane is ready for client requests when Dial returns.
type Dialer struct {
	// Timeout bounds one dial: connect, TLS handshake and SASL together.
	Timeout time.Duration

	sec atomic.Pointer[security] // TLS and SASL of new connections (security.go)
	// onTLSFail reports TLS files that change and fail to load.
	onTLSFail func(setting string) tlsfiles.FailureFunc
	log       *zap.Logger
	status    authStatus
	// Backoff, when set, refuses dials to a broker whose last dials
	// failed, for a while (backoff.go).
	Backoff *Backoff
	// OnFailure, when set, is called after a dial that failed on its own
	// (not cancelled by its caller): the cluster may have changed.
	OnFailure func(addr string)

	own ownConns // kproxy's own questions to each broker (own.go)
}

// Close closes the connections kept for kproxy's own questions, and later
// questions fail; Dial goes on working.
func (d *Dialer) Close() { d.own.close() }

// NewDialer builds the dialer of cfg, reading the TLS files and checking
// the SASL secrets once so that a bad path fails at start-up. onTLSFail
// (may be nil) gives the report of a TLS file that changes and then fails
// to load, per setting.
func NewDialer(cfg config.Upstream, log *zap.Logger, onTLSFail func(setting string) tlsfiles.FailureFunc) (*Dialer, error) {
	d := &Dialer{Timeout: cfg.DialTimeout, log: log, onTLSFail: onTLSFail}
	if d.onTLSFail == nil {
		d.onTLSFail = func(string) tlsfiles.FailureFunc { return nil }
	}
	if err := d.Reconfigure(cfg); err != nil {
		return nil, err
	}
	return d, nil
}

// Dial connects to addr within the dialer's timeout and, when configured,
// completes the TLS handshake and SASL authentication: the connection it
// returns is ready for client requests.
func (d *Dialer) Dial(ctx context.Context, addr string) (_ net.Conn, err error) {
	if d.OnFailure != nil {
		parent := ctx
		defer func() {
			if err != nil && parent.Err() == nil {
				d.OnFailure(addr)
			}
		}()
	}
	if err := d.Backoff.allow(addr); err != nil {
		return nil, err
	}
	dialedAt := time.Now()
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
	sec := d.sec.Load()
	dc := &dialedConn{dialer: d, addr: addr, gen: sec.gen, dialedAt: dialedAt}
	if sec.tls != nil {
		tc := tls.Client(conn, sec.tls.config(addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			err = fmt.Errorf("tls handshake with broker %s: %w", addr, err)
			d.failed(addr, err)
			return nil, err
		}
		conn = tc
	}
	dc.Conn = conn
	if sec.sasl == nil {
		if sec.tls != nil {
			d.succeeded(addr)
		}
		return dc, nil
	}
	started := time.Now() // the broker's session clock starts later: safe to count from here
	lifetime, err := sec.sasl.authenticate(ctx, addr, func(ctx context.Context, req kmsg.Request, resp kmsg.Response) error {
		return roundTrip(ctx, conn, req, resp, d.Timeout)
	})
	if err != nil {
		_ = conn.Close()
		d.failed(addr, err)
		return nil, err
	}
	d.succeeded(addr)
	if lifetime > 0 {
		dc.lifetime, dc.at = lifetime, started
	}
	return dc, nil
}

// dialedConn is a connection as Dial made it, with what the lane that
// carries it and the pool that keeps it must know: the generation of the
// TLS and SASL settings it was dialed with (a reload that replaces them
// retires it: stale), when it was dialed (upstream.pool.max_age counts
// from there), and, when the broker gave its SASL session a lifetime
// (KIP-368), that lifetime and when the session's latest authentication
// began, so that its lane re-authenticates before it runs out. NewLane
// unwraps it; a caller that only round-trips one request uses it as a
// plain net.Conn.
type dialedConn struct {
	net.Conn
	dialer   *Dialer // nil: not dialed by a Dialer, never stale
	addr     string
	gen      uint64
	dialedAt time.Time
	lifetime time.Duration // 0: the SASL session does not expire
	at       time.Time     // when the SASL session's latest authentication began
}

// stale reports whether the dialer's TLS or SASL settings changed since c
// was dialed: it must not carry requests again.
func (c *dialedConn) stale() bool {
	return c.dialer != nil && c.dialer.sec.Load().gen != c.gen
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
	mu      sync.RWMutex
	addrs   map[int32]string
	seeds   []string
	members map[int32]string // the latest metadata kproxy fetched itself (cluster.go)
	next    uint32
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
// sessions spread over the seeds and a dead seed is not always first, then
// every other broker known, then the seeds that are brokers which have left
// the cluster (cluster.go): when every seed is gone (the cluster's brokers
// were all replaced) a bootstrap session still reaches the cluster, without
// first waiting on dials to departed brokers.
func (b *Brokers) Seeds() []string {
	b.mu.Lock()
	n := len(b.seeds)
	start := int(b.next) % max(n, 1)
	b.next++
	others := b.otherAddrs()
	out := make([]string, 0, n+len(others))
	var departed []string
	for i := range n {
		seed := b.seeds[(start+i)%n]
		if b.departed(seed) {
			departed = append(departed, seed)
		} else {
			out = append(out, seed)
		}
	}
	b.mu.Unlock()
	out = append(out, others...)
	return append(out, departed...)
}
