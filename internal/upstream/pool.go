package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The warm pool keeps, per broker address, up to max connections dialed
// ahead: TCP connected, TLS handshaken, SASL authenticated. A lane takes one
// instead of dialing, and every take (hit or miss) has replacements dialed
// in the background a moment later (refillDelay), so a short-lived client
// (a CLI tool, a cron job) finds its lanes ready instead of waiting for
// each one's handshakes.
//
// A pooled connection is fresh: it has carried only the proxy's own SASL
// exchange, and it serves exactly one lane; lanes are never handed back to
// the pool. So no session ever sees a connection another session used,
// and nothing the broker keeps per connection crosses sessions: not the
// client software name and version of the first ApiVersions (KIP-511; a
// reused connection would keep reporting the first client's, in the
// broker's per-connection metrics and KIP-714 telemetry), not a
// re-authenticated SASL session's state, not a half-read answer. What a
// pooled connection does share is what every lane shares already: the
// principal is kproxy's own (upstream.sasl), whichever client it serves.
//
// Connections are handed out oldest first, only while they are sound: not
// idle longer than idle_timeout (well before the broker's
// connections.max.idle.ms closes them), not closed or written to by the
// broker meanwhile, and, when the broker gave the SASL session a lifetime
// (KIP-368), with at least half of it still ahead: the lane re-authenticates
// from the original authentication time, and never receives a connection
// whose session is about to expire.
type Pool struct {
	dial        func(ctx context.Context, addr string) (net.Conn, error)
	max         int
	idleTimeout time.Duration
	now         func() time.Time

	idleGauge    prometheus.Gauge
	hits, misses prometheus.Counter

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	idle    map[string][]pooledConn // oldest first
	filling map[string]int          // background dials under way
	closed  bool
}

type pooledConn struct {
	conn  net.Conn
	since time.Time
}

func newPool(dial func(context.Context, string) (net.Conn, error), max int, idleTimeout time.Duration) *Pool {
	return newPoolClock(dial, max, idleTimeout, time.Now)
}

func newPoolClock(dial func(context.Context, string) (net.Conn, error), max int, idleTimeout time.Duration, now func() time.Time) *Pool {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{
		dial: dial, max: max, idleTimeout: idleTimeout, now: now,
		idleGauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "unregistered"}),
		hits:      prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered"}),
		misses:    prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered"}),
		ctx:       ctx, cancel: cancel,
		idle: map[string][]pooledConn{}, filling: map[string]int{},
	}
	p.wg.Add(1)
	go p.sweep()
	return p
}

// take returns a sound pooled connection to addr, or nil when there is
// none; either way it tops the pool for addr back up in the background.
func (p *Pool) take(addr string) net.Conn {
	defer p.refill(addr)
	for {
		p.mu.Lock()
		list := p.idle[addr]
		if p.closed || len(list) == 0 {
			p.mu.Unlock()
			p.misses.Inc()
			return nil
		}
		pc := list[0]
		list[0] = pooledConn{}
		p.idle[addr] = list[1:]
		p.idleGauge.Dec()
		p.mu.Unlock()
		if p.fresh(pc) && alive(pc.conn) {
			p.hits.Inc()
			return pc.conn
		}
		_ = pc.conn.Close()
	}
}

// fresh reports whether pc may still be handed out: not idle too long and,
// under a SASL session lifetime, with at least half of it ahead.
func (p *Pool) fresh(pc pooledConn) bool {
	now := p.now()
	if now.Sub(pc.since) >= p.idleTimeout {
		return false
	}
	if ac, ok := pc.conn.(*authConn); ok && ac.at.Add(ac.lifetime).Sub(now) < ac.lifetime/2 {
		return false
	}
	return true
}

// alive reports whether the broker has neither closed conn nor sent
// anything on it since it went into the pool. Bytes waiting on a TLS
// connection may be the broker's TLS 1.3 session tickets, which arrive
// after the handshake and are read with the first application data: a TLS
// read that may wait a millisecond consumes them and must find nothing
// else.
func alive(conn net.Conn) bool {
	if ac, ok := conn.(*authConn); ok {
		conn = ac.Conn
	}
	raw := conn
	tc, isTLS := conn.(*tls.Conn)
	if isTLS {
		raw = tc.NetConn()
	}
	switch peek(raw) {
	case peekEmpty:
		return true
	case peekClosed:
		return false
	}
	if !isTLS {
		return false // a Kafka broker sends nothing unasked
	}
	if err := conn.SetReadDeadline(time.Now().Add(time.Millisecond)); err != nil {
		return false
	}
	var b [1]byte
	n, err := conn.Read(b[:])
	if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	return conn.SetReadDeadline(time.Time{}) == nil
}

type peekResult int

const (
	peekEmpty   peekResult = iota // nothing to read, not closed
	peekPending                   // bytes are waiting (or it cannot tell)
	peekClosed                    // the peer closed, or the socket failed
)

func (p *Pool) refill(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	for n := len(p.idle[addr]) + p.filling[addr]; n < p.max; n++ {
		p.filling[addr]++
		p.wg.Add(1)
		go p.fill(addr)
	}
}

// refillDelay is how long a replacement waits before it is dialed. The
// client that took a connection is about to use it, and the replacement's
// handshakes (CPU in kproxy for SCRAM's key derivation and TLS, and on the
// broker) would compete with its first requests: dialed at once, they made
// a short-lived client slower than with no pool at all.
const refillDelay = 100 * time.Millisecond

func (p *Pool) fill(addr string) {
	defer p.wg.Done()
	t := time.NewTimer(refillDelay)
	select {
	case <-p.ctx.Done():
		t.Stop()
		p.mu.Lock()
		p.filling[addr]--
		p.mu.Unlock()
		return
	case <-t.C:
	}
	conn, err := p.dial(p.ctx, addr)
	p.mu.Lock()
	p.filling[addr]--
	if err == nil && !p.closed && len(p.idle[addr]) < p.max {
		p.idle[addr] = append(p.idle[addr], pooledConn{conn: conn, since: p.now()})
		p.idleGauge.Inc()
		conn = nil
	}
	p.mu.Unlock()
	// A failed dial is not retried here: the dialer's backoff and readiness
	// have it, and the next take tries again.
	if conn != nil {
		_ = conn.Close()
	}
}

// sweep closes connections that sat out their idle timeout, so that the
// pool never holds one the broker is about to close.
func (p *Pool) sweep() {
	defer p.wg.Done()
	t := time.NewTicker(max(p.idleTimeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		var stale []net.Conn
		p.mu.Lock()
		for addr, list := range p.idle {
			keep := list[:0]
			for _, pc := range list {
				if p.fresh(pc) {
					keep = append(keep, pc)
				} else {
					stale = append(stale, pc.conn)
					p.idleGauge.Dec()
				}
			}
			clear(list[len(keep):])
			p.idle[addr] = keep
		}
		p.mu.Unlock()
		for _, c := range stale {
			_ = c.Close()
		}
	}
}

// Close closes every pooled connection and waits for background dials.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	var all []net.Conn
	for addr, list := range p.idle {
		for _, pc := range list {
			all = append(all, pc.conn)
			p.idleGauge.Dec()
		}
		delete(p.idle, addr)
	}
	p.mu.Unlock()
	p.cancel()
	for _, c := range all {
		_ = c.Close()
	}
	p.wg.Wait()
}

// Size is the number of connections waiting in the pool.
func (p *Pool) Size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, list := range p.idle {
		n += len(list)
	}
	return n
}
