package upstream

import (
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/peek"
)

// Pool keeps ready upstream connections (dialed, TLS and SASL done) that a
// closed session's lanes gave back, for the next session's lanes to take
// instead of dialing. Why reuse across sessions is safe, and what carries
// over: docs/ARCHITECTURE.md, "Upstream pool".
//
// A connection is kept per broker address, not per group: the broker holds
// no state on a connection that depends on the group of requests it
// carried, so any lane to that broker can take it. The pool runs no
// goroutine: a timer closes each connection when its time is up, and a
// connection is checked (without blocking) when it is given and when it
// is taken.
type Pool struct {
	max         int
	idleTimeout time.Duration
	maxAge      time.Duration

	size     *prometheus.GaugeVec
	hits     prometheus.Counter
	misses   prometheus.Counter
	discards *prometheus.CounterVec

	mu     sync.Mutex
	idle   map[string][]*idleConn // by broker address, most recently used last
	closed bool
}

type idleConn struct {
	conn      net.Conn // a *dialedConn (a plain net.Conn only in tests)
	addr      string
	idleSince time.Time // its last traffic: the broker's idle clock
	retire    time.Time // when it must have been handed out or closed
	reason    string    // why it retires then: idle_timeout, max_age or auth_expiry
	timer     *time.Timer
	removed   bool // taken or discarded; guarded by Pool.mu
}

// NewPool returns a pool of at most maxIdlePerBroker connections per broker
// address, each closed idleTimeout after its last traffic or maxAge after
// it was dialed, whichever comes first; nil when maxIdlePerBroker is 0
// (every method of a nil Pool is a no-op).
func NewPool(maxIdlePerBroker int, idleTimeout, maxAge time.Duration, m *metrics.Metrics) *Pool {
	if maxIdlePerBroker <= 0 {
		return nil
	}
	return &Pool{
		max:         maxIdlePerBroker,
		idleTimeout: idleTimeout,
		maxAge:      maxAge,
		size:        m.PoolConnections,
		hits:        m.PoolHits,
		misses:      m.PoolMisses,
		discards:    m.PoolDiscards,
		idle:        map[string][]*idleConn{},
	}
}

// Take hands out a ready connection to the first of addrs that has one,
// most recently used first, and which address it reaches; nil when none
// has (a miss: the caller dials). A connection whose time is up, that was
// dialed with TLS or SASL settings a reload replaced, or that the broker
// has closed or sent anything on meanwhile, is closed and never handed out.
func (p *Pool) Take(addrs ...string) (net.Conn, string) {
	if p == nil {
		return nil, ""
	}
	now := time.Now()
	var drop []*idleConn
	defer func() {
		for _, ic := range drop {
			_ = ic.conn.Close()
		}
	}()
	for _, addr := range addrs {
		for {
			ic := p.pop(addr)
			if ic == nil {
				break
			}
			if !now.Before(ic.retire) {
				p.discards.WithLabelValues(ic.reason).Inc()
				drop = append(drop, ic)
				continue
			}
			if isStale(ic.conn) {
				p.discards.WithLabelValues(metrics.PoolDiscardReload).Inc()
				drop = append(drop, ic)
				continue
			}
			if reason := unready(ic.conn); reason != "" {
				p.discards.WithLabelValues(reason).Inc()
				drop = append(drop, ic)
				continue
			}
			p.hits.Inc()
			return &pooledConn{Conn: ic.conn, idleSince: ic.idleSince}, addr
		}
	}
	p.misses.Inc()
	return nil, ""
}

// pop removes the most recently pooled connection to addr.
func (p *Pool) pop(addr string) *idleConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.idle[addr]
	if len(list) == 0 {
		return nil
	}
	ic := list[len(list)-1]
	list[len(list)-1] = nil
	p.idle[addr] = list[:len(list)-1]
	ic.removed = true
	ic.timer.Stop()
	p.size.WithLabelValues(addr).Dec()
	return ic
}

// put keeps conn, a connection to addr whose last traffic was at idleSince,
// or closes it when it could not be handed out anyway. At the bound the
// oldest connection goes: the newest has the most time left.
func (p *Pool) put(addr string, conn net.Conn, idleSince time.Time) {
	if reason := unready(conn); reason != "" {
		p.discards.WithLabelValues(reason).Inc()
		_ = conn.Close()
		return
	}
	ic := &idleConn{conn: conn, addr: addr, idleSince: idleSince, retire: idleSince.Add(p.idleTimeout), reason: metrics.PoolDiscardIdleTimeout}
	if dc, ok := conn.(*dialedConn); ok {
		if at := dc.dialedAt.Add(p.maxAge); at.Before(ic.retire) {
			ic.retire, ic.reason = at, metrics.PoolDiscardMaxAge
		}
		if dc.lifetime > 0 {
			if at := dc.retireAt(); at.Before(ic.retire) {
				ic.retire, ic.reason = at, metrics.PoolDiscardAuthExpiry
			}
		}
	}
	wait := time.Until(ic.retire)
	if wait <= 0 {
		p.discards.WithLabelValues(ic.reason).Inc()
		_ = conn.Close()
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.discards.WithLabelValues(metrics.PoolDiscardClosed).Inc()
		_ = conn.Close()
		return
	}
	// Checked under the lock DropStale takes after a reload: a connection
	// dialed with the old settings is either refused here or dropped there.
	if isStale(conn) {
		p.mu.Unlock()
		p.discards.WithLabelValues(metrics.PoolDiscardReload).Inc()
		_ = conn.Close()
		return
	}
	var oldest *idleConn
	list := p.idle[addr]
	if len(list) >= p.max {
		oldest = list[0]
		oldest.removed = true
		oldest.timer.Stop()
		list = append(list[:0], list[1:]...)
		p.size.WithLabelValues(addr).Dec()
	}
	ic.timer = time.AfterFunc(wait, func() { p.expire(ic) })
	p.idle[addr] = append(list, ic)
	p.size.WithLabelValues(addr).Inc()
	p.mu.Unlock()
	if oldest != nil {
		p.discards.WithLabelValues(metrics.PoolDiscardFull).Inc()
		_ = oldest.conn.Close()
	}
}

// expire closes ic when its time is up, unless it was taken first.
func (p *Pool) expire(ic *idleConn) {
	p.mu.Lock()
	if ic.removed {
		p.mu.Unlock()
		return
	}
	ic.removed = true
	list := p.idle[ic.addr]
	for i, c := range list {
		if c == ic {
			p.idle[ic.addr] = append(list[:i], list[i+1:]...)
			break
		}
	}
	p.size.WithLabelValues(ic.addr).Dec()
	p.mu.Unlock()
	p.discards.WithLabelValues(ic.reason).Inc()
	_ = ic.conn.Close()
}

// pooledConn is a connection Take handed out. It keeps the time of its last
// traffic for the lane that takes it (NewLane unwraps it), so that a lane
// given back without carrying anything does not restart the idle clock.
type pooledConn struct {
	net.Conn
	idleSince time.Time
}

// unready is why a connection may not be pooled or handed out as it
// stands, or "" when it may: a peek at its socket, without blocking and
// without reading a byte, finds no close from the broker and no byte
// nobody asked for (a broker never speaks first: a late or duplicate
// answer, which the next lane would take for its own). Where the platform
// cannot peek, a connection the broker closed fails its lane's first
// request instead.
func unready(conn net.Conn) string {
	if dc, ok := conn.(*dialedConn); ok {
		conn = dc.Conn
	}
	switch state, _ := peek.At(conn); state {
	case peek.Data:
		return metrics.PoolDiscardUnsolicited
	case peek.Closed:
		return metrics.PoolDiscardBroken
	}
	return ""
}

// discard counts a connection closed instead of pooled.
func (p *Pool) discard(reason string) {
	if p != nil {
		p.discards.WithLabelValues(reason).Inc()
	}
}

// Close closes every pooled connection; a connection given back later is
// closed at once.
func (p *Pool) Close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.closed = true
	var all []*idleConn
	for addr, list := range p.idle {
		for _, ic := range list {
			ic.removed = true
			ic.timer.Stop()
			p.size.WithLabelValues(addr).Dec()
		}
		all = append(all, list...)
		delete(p.idle, addr)
	}
	p.mu.Unlock()
	for _, ic := range all {
		p.discards.WithLabelValues(metrics.PoolDiscardClosed).Inc()
		_ = ic.conn.Close()
	}
}

// DropStale closes every pooled connection dialed with TLS or SASL
// settings that a reload (Dialer.Reconfigure, called first) replaced, so
// that no session takes a connection authenticated as the old identity.
func (p *Pool) DropStale() {
	if p == nil {
		return
	}
	p.mu.Lock()
	var stale []*idleConn
	for addr, list := range p.idle {
		kept := list[:0]
		for _, ic := range list {
			if !isStale(ic.conn) {
				kept = append(kept, ic)
				continue
			}
			ic.removed = true
			ic.timer.Stop()
			p.size.WithLabelValues(addr).Dec()
			stale = append(stale, ic)
		}
		clear(list[len(kept):])
		p.idle[addr] = kept
	}
	p.mu.Unlock()
	for _, ic := range stale {
		p.discards.WithLabelValues(metrics.PoolDiscardReload).Inc()
		_ = ic.conn.Close()
	}
}

// isStale reports whether conn was dialed with TLS or SASL settings a
// reload replaced.
func isStale(conn net.Conn) bool {
	dc, ok := conn.(*dialedConn)
	return ok && dc.stale()
}

// Idle is how many connections to addr are pooled now.
func (p *Pool) Idle(addr string) int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle[addr])
}

// retireAt is when a pooled connection with this SASL session must leave
// the pool: when the earliest re-authentication a lane may schedule would
// begin (reauthSchedule with the largest margin). A lane that takes it
// before then re-authenticates on its own schedule, before the session
// ends; after then it would have to at once, so it is closed instead.
func (c *dialedConn) retireAt() time.Time {
	hold, _ := reauthSchedule(c.lifetime, 1)
	return c.at.Add(hold)
}
