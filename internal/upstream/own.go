package upstream

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ownIdle is how long a broker connection kept for kproxy's own questions
// stays open unused: well within the broker's idle close (10 minutes).
const ownIdle = time.Minute

// ownConns keeps one connection per broker for kproxy's own questions
// (FindCoordinator), asked one at a time on it. A client's request that
// needs kproxy to ask something (an old offset request, for its group's
// coordinator) then costs the broker one request, as the client's own
// question would, rather than a connection and an authentication: a client
// naming ever new groups would otherwise have kproxy open connections as
// fast as it sends, and a broker's connection-rate quota
// (max.connection.creation.rate) would then throttle every connection
// kproxy opens.
type ownConns struct {
	mu     sync.Mutex
	conns  map[string]*ownConn
	closed bool
}

type ownConn struct {
	mu   sync.Mutex // one question at a time
	conn net.Conn   // nil: none open
	idle *time.Timer
}

// ask sends req to the broker at addr on the connection kept for it,
// dialing one when there is none, and reads its answer into resp. A kept
// connection that fails (the broker closed it: idle, or its authentication
// expired) is closed and the question asked once more on a new one. One
// dialed with TLS or SASL settings a reload replaced is closed unused, as
// the pool's are: kproxy's questions go as its current identity.
func (o *ownConns) ask(ctx context.Context, d *Dialer, addr string, req kmsg.Request, resp kmsg.Response) error {
	c, err := o.conn(addr)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idle != nil {
		c.idle.Stop()
	}
	if c.conn != nil && isStale(c.conn) {
		c.conn.Close()
		c.conn = nil
	}
	for kept := c.conn != nil; ; kept = false {
		if c.conn == nil {
			if c.conn, err = d.Dial(ctx, addr); err != nil {
				c.conn = nil
				return err
			}
		}
		err = roundTrip(ctx, c.conn, req, resp, d.Timeout)
		if err == nil {
			conn := c.conn
			c.idle = time.AfterFunc(ownIdle, func() { o.drop(c, conn) })
			return nil
		}
		c.conn.Close()
		c.conn = nil
		if !kept || ctx.Err() != nil {
			return err
		}
	}
}

// conn is addr's entry, made on first use.
func (o *ownConns) conn(addr string) (*ownConn, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, net.ErrClosed
	}
	if o.conns == nil {
		o.conns = map[string]*ownConn{}
	}
	c, ok := o.conns[addr]
	if !ok {
		c = new(ownConn)
		o.conns[addr] = c
	}
	return c, nil
}

// drop closes conn, c's connection left idle, unless a question took it
// meanwhile.
func (o *ownConns) drop(c *ownConn, conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == conn {
		c.conn.Close()
		c.conn = nil
	}
}

// close closes every kept connection; questions after it fail.
func (o *ownConns) close() {
	o.mu.Lock()
	o.closed = true
	conns := o.conns
	o.conns = nil
	o.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		if c.idle != nil {
			c.idle.Stop()
		}
		if c.conn != nil {
			c.conn.Close()
			c.conn = nil
		}
		c.mu.Unlock()
	}
}
