package upstream

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/metrics"
)

// staleDialer is a dialer of cfg, and reload makes every connection it
// dialed so far stale.
func staleDialer(t *testing.T, cfg config.Upstream) (d *Dialer, reload func()) {
	t.Helper()
	d, err := NewDialer(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d, func() {
		if err := d.Reconfigure(cfg); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReloadRetiresPooledConnections: after a reload that replaced the
// dialer's settings, DropStale closes what the pool holds, and neither put
// nor Take lets an older connection through; a connection dialed after it
// is pooled as usual.
func TestReloadRetiresPooledConnections(t *testing.T) {
	defer goleak.VerifyNone(t)
	p, m := testPool(t, 4, time.Minute)
	d, reload := staleDialer(t, config.Upstream{})
	dialed := func(c net.Conn) *dialedConn {
		return &dialedConn{Conn: c, dialer: d, gen: d.sec.Load().gen, dialedAt: time.Now()}
	}
	pooled, pooledBroker := tcpPair(t)
	late, lateBroker := tcpPair(t)
	p.put("b:1", dialed(pooled), time.Now())
	lateConn := dialed(late) // dialed before the reload, given back after it
	reload()
	p.DropStale()
	brokerSeesClose(t, pooledBroker)
	p.put("b:1", lateConn, time.Now())
	brokerSeesClose(t, lateBroker)
	if got := discards(m, metrics.PoolDiscardReload); got != 2 {
		t.Fatalf("reload discards %v, want 2", got)
	}

	fresh, freshBroker := tcpPair(t)
	p.put("b:1", dialed(fresh), time.Now())
	if n := p.Idle("b:1"); n != 1 {
		t.Fatalf("%d pooled, want the connection dialed after the reload", n)
	}
	reload() // again, with nobody calling DropStale: Take still refuses it
	if taken, _ := p.Take("b:1"); taken != nil {
		t.Fatal("a connection dialed before a reload was handed out")
	}
	brokerSeesClose(t, freshBroker)
	if got := discards(m, metrics.PoolDiscardReload); got != 3 {
		t.Fatalf("reload discards %v, want 3", got)
	}
}

// TestReloadRetiresLiveLane: a lane dialed before a reload finishes what
// is in flight on it, then closes without losing anything and without
// going to the pool; an idle one refuses its next request (ErrLaneClosed:
// the session dials a new lane) and closes.
func TestReloadRetiresLiveLane(t *testing.T) {
	defer goleak.VerifyNone(t)
	p, m := testPool(t, 4, time.Minute)
	d, reload := staleDialer(t, config.Upstream{})
	busyConn, busyBroker := tcpPair(t)
	idleUp, idleBroker := tcpPair(t)
	busy, hb := pooledLane(t, p, &dialedConn{Conn: busyConn, dialer: d, dialedAt: time.Now()})
	idle, hi := pooledLane(t, p, &dialedConn{Conn: idleUp, dialer: d, dialedAt: time.Now()})
	laneRoundTrip(t, busy, hb, busyBroker, 1)
	laneRoundTrip(t, idle, hi, idleBroker, 1)

	if err := busy.Send(request(2), 2, true, 2); err != nil {
		t.Fatal(err)
	}
	if got := readRequest(t, busyBroker); got != 2 {
		t.Fatalf("broker read correlation id %d, want 2", got)
	}
	reload()
	answer(t, busyBroker, 2, "ok") // the answer in flight is delivered...
	if err := waitDone(t, hb); err != nil {
		t.Fatalf("LaneDone(%v), want nil: nothing was lost", err)
	}
	if o := hb.owners(); len(o) != 2 || o[1] != 2 {
		t.Fatalf("answers delivered %v, want [1 2]", o)
	}
	brokerSeesClose(t, busyBroker) // ...and the lane closes once drained
	busy.Release()

	if err := idle.Send(request(2), 2, true, 2); !errors.Is(err, ErrLaneClosed) {
		t.Fatalf("idle stale lane's Send: %v, want ErrLaneClosed", err)
	}
	if err := waitDone(t, hi); err != nil {
		t.Fatalf("LaneDone(%v), want nil: nothing was lost", err)
	}
	brokerSeesClose(t, idleBroker)
	if n := p.Idle("broker:9092"); n != 0 {
		t.Fatalf("%d pooled, want 0", n)
	}
	if got := discards(m, metrics.PoolDiscardBusy) + discards(m, metrics.PoolDiscardUnclean); got != 0 {
		t.Fatalf("%v busy or unclean discards: a retired lane was taken for a busy one", got)
	}
}

// TestReloadRetiresInsteadOfReauthenticating: a stale lane whose SASL
// session falls due with nothing parked closes, rather than authenticate
// its old connection with the new settings (a broker refuses a change of
// principal on re-authentication): the broker reads nothing more.
func TestReloadRetiresInsteadOfReauthenticating(t *testing.T) {
	defer goleak.VerifyNone(t)
	d, reload := staleDialer(t, config.Upstream{SASL: config.UpstreamSASL{Mechanism: config.SASLPlain, Username: "proxy", Password: "pw"}})
	conn, broker := tcpPair(t)
	dc := &dialedConn{Conn: conn, dialer: d, addr: "broker:9092", dialedAt: time.Now(), lifetime: time.Second, at: time.Now().Add(-time.Second)}
	reload()
	_, h := pooledLane(t, nil, dc) // its session is due for re-authentication now
	if err := waitDone(t, h); err != nil {
		t.Fatalf("LaneDone(%v), want nil: nothing was lost", err)
	}
	_ = broker.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, broker)
	if n != 0 || err != nil {
		t.Fatalf("broker read %d bytes (a re-authentication with the new settings?) then %v; want a close and nothing", n, err)
	}
}
