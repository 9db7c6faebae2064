package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// poolBroker accepts connections and keeps them, so a test can close or
// write to the broker's end of a pooled connection.
type poolBroker struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	dials atomic.Int32
}

func newPoolBroker(t *testing.T) *poolBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &poolBroker{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, c := range b.conns {
			_ = c.Close()
		}
	})
	return b
}

func (b *poolBroker) dial(ctx context.Context, addr string) (net.Conn, error) {
	b.dials.Add(1)
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

func (b *poolBroker) addr() string { return b.ln.Addr().String() }

// accepted waits until the broker holds n connections and returns them.
func (b *poolBroker) accepted(t *testing.T, n int) []net.Conn {
	t.Helper()
	eventually(t, "the broker to accept connections", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.conns) >= n
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]net.Conn(nil), b.conns...)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// clock is a test clock that moves only when told.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestPoolFillsOnMissAndHandsOutReadyConnections: the first take misses
// and fills the pool to its bound; later takes get those connections (the
// broker sees no new dial for them) and each starts one replacement.
func TestPoolFillsOnMissAndHandsOutReadyConnections(t *testing.T) {
	b := newPoolBroker(t)
	p := newPool(b.dial, 3, time.Minute)
	defer p.Close()
	if c := p.take(b.addr()); c != nil {
		t.Fatal("a take from an empty pool returned a connection")
	}
	eventually(t, "the pool to fill", func() bool { return p.Size() == 3 })
	if d := b.dials.Load(); d != 3 {
		t.Fatalf("%d dials to fill a pool of 3", d)
	}
	c := p.take(b.addr())
	if c == nil {
		t.Fatal("no connection from a full pool")
	}
	defer c.Close()
	// The connection works: what is written arrives at the broker.
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replacement", func() bool { return p.Size() == 3 && b.dials.Load() == 4 })
	// Concurrent takes never push the pool past its bound.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c := p.take(b.addr()); c != nil {
				_ = c.Close()
			}
		}()
	}
	wg.Wait()
	eventually(t, "the pool to refill", func() bool { return p.Size() == 3 })
	p.mu.Lock()
	filling := p.filling[b.addr()]
	p.mu.Unlock()
	if n := p.Size(); n > 3 || filling != 0 {
		t.Fatalf("pool holds %d (and fills %d) for a bound of 3", n, filling)
	}
}

// TestPoolDropsIdleDeadAndExpiringConnections: a connection idle past the
// idle timeout, one the broker closed or wrote to, and one whose SASL
// session has less than half its lifetime ahead are never handed out.
func TestPoolDropsIdleDeadAndExpiringConnections(t *testing.T) {
	b := newPoolBroker(t)
	clk := newClock()
	p := newPoolClock(b.dial, 2, time.Minute, clk.now)
	defer p.Close()
	addr := b.addr()
	p.take(addr)
	eventually(t, "the pool to fill", func() bool { return p.Size() == 2 })
	brokerEnds := b.accepted(t, 2)

	// The broker closes one and writes to the other.
	_ = brokerEnds[0].Close()
	if _, err := brokerEnds[1].Write([]byte("unsolicited")); err != nil {
		t.Fatal(err)
	}
	// Wait for the close and the bytes to arrive before the pool looks.
	p.mu.Lock()
	pooled := []net.Conn{p.idle[addr][0].conn, p.idle[addr][1].conn}
	p.mu.Unlock()
	eventually(t, "the broker's close and bytes to arrive", func() bool {
		return peek(pooled[0]) != peekEmpty && peek(pooled[1]) != peekEmpty
	})
	if c := p.take(addr); c != nil {
		t.Fatal("handed out a connection the broker closed or wrote to")
	}

	// Idle past the timeout.
	eventually(t, "the pool to refill", func() bool { return p.Size() == 2 })
	clk.advance(time.Minute)
	if c := p.take(addr); c != nil {
		t.Fatal("handed out a connection idle past the idle timeout")
	}

	// SASL session lifetimes (KIP-368).
	eventually(t, "the pool to refill", func() bool { return p.Size() == 2 })
	p.mu.Lock()
	list := p.idle[addr]
	list[0].conn = &authConn{Conn: list[0].conn, lifetime: 10 * time.Minute, at: clk.now().Add(-6 * time.Minute)} // 4 of 10 left
	list[1].conn = &authConn{Conn: list[1].conn, lifetime: 10 * time.Minute, at: clk.now().Add(-4 * time.Minute)} // 6 of 10 left
	second := list[1].conn
	p.mu.Unlock()
	if c := p.take(addr); c != second {
		t.Fatalf("took %v, want the connection with 6 of 10 minutes of session left", c)
	}
	_ = second.Close()
}

// TestPoolSweepAndClose: the sweep closes connections past the idle
// timeout, and Close closes the rest and stops every background dial.
func TestPoolSweepAndClose(t *testing.T) {
	b := newPoolBroker(t)
	clk := newClock()
	p := newPoolClock(b.dial, 2, 40*time.Millisecond, clk.now)
	p.take(b.addr())
	eventually(t, "the pool to fill", func() bool { return p.Size() == 2 })
	clk.advance(time.Second)
	eventually(t, "the sweep", func() bool { return p.Size() == 0 })
	for _, c := range b.accepted(t, 2) {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("swept connection not closed: %v", err)
		}
	}
	p.take(b.addr())
	eventually(t, "the pool to refill", func() bool { return p.Size() == 2 })
	p.Close()
	if p.Size() != 0 {
		t.Fatal("Close left connections in the pool")
	}
	if c := p.take(b.addr()); c != nil {
		t.Fatal("a closed pool handed out a connection")
	}
}

// TestPoolTLSSessionTicketsAreNotData: a TLS 1.3 broker's session tickets
// wait unread on a pooled connection; they do not make it unusable, while
// application data from the broker does.
func TestPoolTLSSessionTicketsAreNotData(t *testing.T) {
	cert := selfSignedForTest(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var brokerEnds []*tls.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			_ = tc.Handshake() // sends the session tickets
			mu.Lock()
			brokerEnds = append(brokerEnds, tc)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range brokerEnds {
			_ = c.Close()
		}
	}()
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		// A session cache makes the client offer resumption, so the
		// server sends tickets.
		d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, ClientSessionCache: tls.NewLRUClientSessionCache(4)}}
		return d.DialContext(ctx, "tcp", addr)
	}
	p := newPool(dial, 2, time.Minute)
	defer p.Close()
	addr := ln.Addr().String()
	p.take(addr)
	eventually(t, "the pool to fill", func() bool { return p.Size() == 2 })
	p.mu.Lock()
	pooled := []net.Conn{p.idle[addr][0].conn, p.idle[addr][1].conn}
	p.mu.Unlock()
	eventually(t, "the session tickets to arrive", func() bool {
		return peek(pooled[0].(*tls.Conn).NetConn()) == peekPending && peek(pooled[1].(*tls.Conn).NetConn()) == peekPending
	})
	c := p.take(addr)
	if c == nil {
		t.Fatal("a TLS connection with only session tickets waiting was not handed out")
	}
	_ = c.Close()

	// Once the pool is full again, the broker sends application data on
	// every connection.
	eventually(t, "the pool to refill", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return p.Size() == 2 && len(brokerEnds) == 3
	})
	mu.Lock()
	ends := append([]*tls.Conn(nil), brokerEnds...)
	mu.Unlock()
	for _, e := range ends {
		_, _ = e.Write([]byte("unsolicited"))
	}
	p.mu.Lock()
	rest := p.idle[addr]
	p.mu.Unlock()
	for _, pc := range rest {
		eventually(t, "the data to arrive", func() bool { return peek(pc.conn.(*tls.Conn).NetConn()) == peekPending })
	}
	for range len(rest) {
		if c := p.take(addr); c != nil && slices.Contains(connsOf(rest), c) {
			t.Fatal("handed out a TLS connection the broker sent data on")
		}
	}
}

func connsOf(pcs []pooledConn) []net.Conn {
	var out []net.Conn
	for _, pc := range pcs {
		out = append(out, pc.conn)
	}
	return out
}
