// Package upstream owns the connections to the Kafka brokers: dialing, the
// broker address table, and lanes (one pipelined connection per session and
// group).
package upstream

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"
)

// Dialer opens connections to brokers. TLS and SASL wrap here, so that every
// lane is ready for client requests when Dial returns.
type Dialer struct {
	Timeout time.Duration
	// Backoff, when set, refuses dials to a broker whose last dials
	// failed, for a while (backoff.go).
	Backoff *Backoff
}

// Dial connects to addr within the dialer's timeout.
func (d *Dialer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	if err := d.Backoff.allow(addr); err != nil {
		return nil, err
	}
	nd := net.Dialer{Timeout: d.Timeout, KeepAlive: 30 * time.Second}
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
	return conn, nil
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
