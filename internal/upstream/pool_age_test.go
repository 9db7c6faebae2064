package upstream

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kproxy/kproxy/internal/metrics"
)

// TestPoolMaxAge: a connection is pooled for at most upstream.pool.max_age
// from its dial, however recent its traffic. One already that old is not
// pooled when its lane is released; one that reaches the age in the pool
// is closed and never handed out.
func TestPoolMaxAge(t *testing.T) {
	defer goleak.VerifyNone(t)
	const maxAge = time.Hour
	m := metrics.NewNop()
	p := NewPool(4, time.Minute, maxAge, m)
	t.Cleanup(p.Close)

	// Busy all its life: its idle clock restarts with every answer.
	old, b1 := tcpPair(t)
	l, h := pooledLane(t, p, &dialedConn{Conn: old, addr: "broker:9092", dialedAt: time.Now().Add(-maxAge)})
	laneRoundTrip(t, l, h, b1, 1)
	l.Release()
	if err := waitDone(t, h); err != nil {
		t.Fatal(err)
	}
	brokerSeesClose(t, b1)
	if n := p.Idle("broker:9092"); n != 0 {
		t.Fatalf("%d pooled, want 0: the lane's connection is max_age old", n)
	}

	nearly, b2 := tcpPair(t)
	p.put("broker:9092", &dialedConn{Conn: nearly, dialedAt: time.Now().Add(-maxAge + 100*time.Millisecond)}, time.Now())
	brokerSeesClose(t, b2) // closed by the pool's timer, not taken
	if taken, _ := p.Take("broker:9092"); taken != nil {
		t.Fatal("a connection past max_age was handed out")
	}
	if got := discards(m, metrics.PoolDiscardMaxAge); got != 2 {
		t.Fatalf("max_age discards %v, want 2", got)
	}

	young, _ := tcpPair(t)
	p.put("broker:9092", &dialedConn{Conn: young, dialedAt: time.Now()}, time.Now())
	if taken, _ := p.Take("broker:9092"); taken == nil || unwrap(taken) != young {
		t.Fatalf("took %v, want the young connection", taken)
	}
}
