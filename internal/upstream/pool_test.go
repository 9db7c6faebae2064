package upstream

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"net"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/kproxy/kproxy/internal/bufpool"
	"github.com/kproxy/kproxy/internal/metrics"
)

// tcpPair is a loopback TCP connection: the proxy's end and the broker's.
func tcpPair(t *testing.T) (proxy, broker net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	proxy, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	broker = <-accepted
	if broker == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { proxy.Close(); broker.Close() })
	return proxy, broker
}

func testPool(t *testing.T, max int, idle time.Duration) (*Pool, *metrics.Metrics) {
	t.Helper()
	m := metrics.NewNop()
	p := NewPool(max, idle, time.Hour, m)
	t.Cleanup(p.Close)
	return p, m
}

func testLaneOptions() *LaneOptions {
	return &LaneOptions{
		Pool: bufpool.New(), MaxFrameBytes: 1 << 20, IdleTimeout: time.Minute,
		BytesIn:  prometheus.NewCounter(prometheus.CounterOpts{Name: "in"}),
		BytesOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "out"}),
	}
}

func pooledLane(t *testing.T, p *Pool, conn net.Conn) (*testLane, *fakeHandler) {
	t.Helper()
	h := newFakeHandler()
	l := NewLane[owner](p, conn, "broker:9092", h, testLaneOptions(), prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"}))
	return l, h
}

// laneRoundTrip sends one request on l and answers it from the broker side,
// checking that the broker read exactly that request.
func laneRoundTrip(t *testing.T, l *testLane, h *fakeHandler, broker net.Conn, corr int32) {
	t.Helper()
	if err := l.Send(request(corr), corr, true, corr); err != nil {
		t.Fatal(err)
	}
	if got := readRequest(t, broker); got != corr {
		t.Fatalf("broker read correlation id %d, want %d", got, corr)
	}
	answer(t, broker, corr, "ok")
	eventually(t, func() bool {
		o := h.owners()
		return len(o) > 0 && o[len(o)-1] == corr
	})
}

func discards(m *metrics.Metrics, reason string) float64 {
	return testutil.ToFloat64(m.PoolDiscards.WithLabelValues(reason))
}

// brokerSeesClose waits until the broker's end reads EOF (or a reset).
func brokerSeesClose(t *testing.T, broker net.Conn) {
	t.Helper()
	_ = broker.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	_, err := broker.Read(b[:])
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("broker's end still open (read: %v)", err)
	}
}

// TestPoolReuseAcrossLanes: an idle lane's connection goes back to the pool
// with nothing consumed; the next lane takes it and its requests and answers
// pair up exactly.
func TestPoolReuseAcrossLanes(t *testing.T) {
	defer goleak.VerifyNone(t)
	p, m := testPool(t, 4, time.Minute)
	conn, broker := tcpPair(t)
	l, h := pooledLane(t, p, conn)
	laneRoundTrip(t, l, h, broker, 1)
	laneRoundTrip(t, l, h, broker, 2)
	l.Release()
	if err := waitDone(t, h); err != nil {
		t.Fatalf("LaneDone(%v), want nil", err)
	}
	if n := p.Idle("broker:9092"); n != 1 {
		t.Fatalf("%d pooled, want 1", n)
	}
	if got := testutil.ToFloat64(m.PoolConnections.WithLabelValues("broker:9092")); got != 1 {
		t.Fatalf("pool gauge %v, want 1", got)
	}
	if err := l.Send(request(3), 3, true, 3); !errors.Is(err, ErrLaneClosed) {
		t.Fatalf("send on a released lane: %v, want ErrLaneClosed", err)
	}
	taken, addr := p.Take("other:9092", "broker:9092")
	if unwrap(taken) != conn || addr != "broker:9092" {
		t.Fatalf("took %v at %q, want the released connection at broker:9092", taken, addr)
	}
	if got := testutil.ToFloat64(m.PoolHits); got != 1 {
		t.Fatalf("hits %v, want 1", got)
	}
	l2, h2 := pooledLane(t, p, taken)
	laneRoundTrip(t, l2, h2, broker, 7)
	laneRoundTrip(t, l2, h2, broker, 8)
	if again, _ := p.Take("broker:9092"); again != nil {
		t.Fatal("the pool handed out a connection in use")
	}
	if got := testutil.ToFloat64(m.PoolMisses); got != 1 {
		t.Fatalf("misses %v, want 1", got)
	}
	l2.Close()
	waitDone(t, h2)
}

// TestPoolNeverTakesBusyLanes: a lane with anything possibly in flight is
// closed, never pooled: an unanswered request, a re-authentication under
// way, an acks=0 produce (a server that answers those may do so at any
// time, even after later answers).
func TestPoolNeverTakesBusyLanes(t *testing.T) {
	defer goleak.VerifyNone(t)
	acks0 := func(t *testing.T, l *testLane, broker net.Conn) {
		if err := l.Send(request(5), 5, false, 0); err != nil {
			t.Fatal(err)
		}
		readRequest(t, broker)
	}
	cases := map[string]struct {
		busy   func(t *testing.T, l *testLane, broker net.Conn)
		reason string
	}{
		"request in flight": {func(t *testing.T, l *testLane, broker net.Conn) {
			if err := l.Send(request(5), 5, true, 5); err != nil {
				t.Fatal(err)
			}
			readRequest(t, broker) // written, never answered
		}, metrics.PoolDiscardBusy},
		"re-authentication": {func(t *testing.T, l *testLane, _ net.Conn) {
			l.mu.Lock()
			l.reauth = &reauthState[owner]{holding: true, lifetime: time.Hour, since: time.Now()}
			l.mu.Unlock()
		}, metrics.PoolDiscardBusy},
		"acks=0 produce": {acks0, metrics.PoolDiscardAcks0},
		"acks=0 produce, then an answered request": {func(t *testing.T, l *testLane, broker net.Conn) {
			acks0(t, l, broker)
			laneRoundTrip(t, l, l.h.(*fakeHandler), broker, 6)
		}, metrics.PoolDiscardAcks0},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p, m := testPool(t, 4, time.Minute)
			conn, broker := tcpPair(t)
			l, h := pooledLane(t, p, conn)
			laneRoundTrip(t, l, h, broker, 1)
			c.busy(t, l, broker)
			l.Release()
			waitDone(t, h)
			if n := p.Idle("broker:9092"); n != 0 {
				t.Fatalf("%d pooled, want 0", n)
			}
			brokerSeesClose(t, broker)
			if got := discards(m, c.reason); got != 1 {
				t.Fatalf("%s discards %v, want 1", c.reason, got)
			}
		})
	}
}

// TestPoolRefusesUnsolicitedBytes: bytes from a broker that had nothing to
// answer, read by the lane, still in the socket when the pool is given the
// connection, or arriving while it is pooled, keep the connection from
// ever being handed out.
func TestPoolRefusesUnsolicitedBytes(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Run("released", func(t *testing.T) {
		p, m := testPool(t, 4, time.Minute)
		conn, broker := tcpPair(t)
		l, h := pooledLane(t, p, conn)
		laneRoundTrip(t, l, h, broker, 1)
		if _, err := broker.Write([]byte{0, 0, 0}); err != nil { // part of a size prefix
			t.Fatal(err)
		}
		l.Release()
		waitDone(t, h)
		if taken, _ := p.Take("broker:9092"); taken != nil {
			t.Fatal("a connection with unread broker bytes was handed out")
		}
		if got := discards(m, metrics.PoolDiscardUnclean) + discards(m, metrics.PoolDiscardUnsolicited); got != 1 {
			t.Fatalf("unclean+unsolicited discards %v, want 1", got)
		}
		brokerSeesClose(t, broker)
	})
	for _, late := range []bool{false, true} {
		name := map[bool]string{false: "put", true: "take"}[late]
		t.Run(name, func(t *testing.T) {
			p, m := testPool(t, 4, time.Minute)
			conn, broker := tcpPair(t)
			if !late {
				unsolicited(t, conn, broker)
			}
			p.put("b:1", conn, time.Now())
			if late {
				if n := p.Idle("b:1"); n != 1 {
					t.Fatalf("%d pooled, want 1", n)
				}
				unsolicited(t, conn, broker)
			} else if n := p.Idle("b:1"); n != 0 {
				t.Fatalf("a connection with unread broker bytes was pooled (%d pooled, want 0)", n)
			}
			if taken, _ := p.Take("b:1"); taken != nil {
				t.Fatal("a connection with unread broker bytes was handed out")
			}
			if got := discards(m, metrics.PoolDiscardUnsolicited); got != 1 {
				t.Fatalf("unsolicited discards %v, want 1", got)
			}
			brokerSeesClose(t, broker)
		})
	}
}

// unsolicited has the broker send a late, duplicate answer and waits until
// it is in conn's socket.
func unsolicited(t *testing.T, conn, broker net.Conn) {
	t.Helper()
	answer(t, broker, 1, "late")
	eventually(t, func() bool { return unready(conn) != "" })
}

// TestPoolDropsClosedConnections: a pooled connection the broker closed is
// not handed out.
func TestPoolDropsClosedConnections(t *testing.T) {
	defer goleak.VerifyNone(t)
	p, m := testPool(t, 4, time.Minute)
	conn, broker := tcpPair(t)
	p.put("b:1", conn, time.Now())
	broker.Close()
	eventually(t, func() bool { return unready(conn) != "" }) // the FIN arrived
	if taken, _ := p.Take("b:1"); taken != nil {
		t.Fatal("a closed connection was handed out")
	}
	if got := discards(m, metrics.PoolDiscardBroken); got != 1 {
		t.Fatalf("broken discards %v, want 1", got)
	}
}

// TestPoolBounded: at the bound the oldest connection is closed.
func TestPoolBounded(t *testing.T) {
	defer goleak.VerifyNone(t)
	p, m := testPool(t, 2, time.Minute)
	var conns, brokers []net.Conn
	for range 3 {
		c, b := tcpPair(t)
		conns, brokers = append(conns, c), append(brokers, b)
		p.put("b:1", c, time.Now())
	}
	if n := p.Idle("b:1"); n != 2 {
		t.Fatalf("%d pooled, want 2", n)
	}
	if got := testutil.ToFloat64(m.PoolConnections.WithLabelValues("b:1")); got != 2 {
		t.Fatalf("pool gauge %v, want 2", got)
	}
	if got := discards(m, metrics.PoolDiscardFull); got != 1 {
		t.Fatalf("full discards %v, want 1", got)
	}
	brokerSeesClose(t, brokers[0])
	taken2, _ := p.Take("b:1")
	if unwrap(taken2) != conns[2] {
		t.Fatal("Take did not hand out the most recently pooled connection")
	}
	p.put("b:2", unwrap(taken2), time.Now())
	if n := p.Idle("b:2"); n != 1 {
		t.Fatalf("another broker's bound is its own: %d pooled, want 1", n)
	}
}

// TestPoolIdleTimeout: a pooled connection is closed idleTimeout after its
// last traffic, counted from that traffic, not from when it was pooled.
func TestPoolIdleTimeout(t *testing.T) {
	defer goleak.VerifyNone(t)
	p, m := testPool(t, 4, 200*time.Millisecond)
	conn, broker := tcpPair(t)
	p.put("b:1", conn, time.Now())
	brokerSeesClose(t, broker)
	if n := p.Idle("b:1"); n != 0 {
		t.Fatalf("%d pooled after the idle timeout, want 0", n)
	}
	if got := discards(m, metrics.PoolDiscardIdleTimeout); got != 1 {
		t.Fatalf("idle_timeout discards %v, want 1", got)
	}
	stale, broker2 := tcpPair(t)
	p.put("b:1", stale, time.Now().Add(-time.Second)) // idle longer than the timeout already
	brokerSeesClose(t, broker2)
	if got := discards(m, metrics.PoolDiscardIdleTimeout); got != 2 {
		t.Fatalf("idle_timeout discards %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.PoolConnections.WithLabelValues("b:1")); got != 0 {
		t.Fatalf("pool gauge %v, want 0", got)
	}
}

// TestPoolSASLExpiry: a connection whose SASL session is about to need
// re-authenticating is closed, never handed out; one with time left is
// handed out with its session's lifetime and start, so that its next lane
// re-authenticates on the broker's schedule, not on a fresh one.
func TestPoolSASLExpiry(t *testing.T) {
	defer goleak.VerifyNone(t)
	p, m := testPool(t, 4, time.Minute)
	lifetime := 10 * time.Second
	hold, _ := reauthSchedule(lifetime, 1)

	expired, b1 := tcpPair(t)
	p.put("b:1", &dialedConn{Conn: expired, dialedAt: time.Now(), lifetime: lifetime, at: time.Now().Add(-hold)}, time.Now())
	brokerSeesClose(t, b1)

	nearly, b2 := tcpPair(t)
	p.put("b:1", &dialedConn{Conn: nearly, dialedAt: time.Now(), lifetime: lifetime, at: time.Now().Add(-hold + 100*time.Millisecond)}, time.Now())
	brokerSeesClose(t, b2) // closed by the pool's timer, not taken
	if taken, _ := p.Take("b:1"); taken != nil {
		t.Fatal("a connection past its re-authentication point was handed out")
	}
	if got := discards(m, metrics.PoolDiscardAuthExpiry); got != 2 {
		t.Fatalf("auth_expiry discards %v, want 2", got)
	}

	fresh, _ := tcpPair(t)
	at := time.Now().Add(-time.Second)
	p.put("b:1", &dialedConn{Conn: fresh, dialedAt: time.Now(), lifetime: lifetime, at: at}, time.Now())
	taken, _ := p.Take("b:1")
	ac := dialedOf(taken)
	if ac == nil || ac.Conn != fresh || ac.lifetime != lifetime || !ac.at.Equal(at) {
		t.Fatalf("took %#v, want the connection with its SASL session (lifetime %v, at %v)", taken, lifetime, at)
	}
}

// TestReleaseCarriesLatestSASLSession: a released lane's connection carries
// the session its last re-authentication began, not the one it was dialed
// with.
func TestReleaseCarriesLatestSASLSession(t *testing.T) {
	defer goleak.VerifyNone(t)
	p, _ := testPool(t, 4, time.Minute)
	conn, broker := tcpPair(t)
	dialedAt := time.Now().Add(-time.Minute)
	l, h := pooledLane(t, p, &dialedConn{Conn: conn, addr: "broker:9092", dialedAt: dialedAt, lifetime: time.Hour, at: dialedAt})
	laneRoundTrip(t, l, h, broker, 1)
	reauthAt := time.Now()
	l.mu.Lock()
	l.reauth.lifetime, l.reauth.since = 2*time.Hour, reauthAt // as release() records a re-authentication
	l.mu.Unlock()
	l.Release()
	waitDone(t, h)
	taken, _ := p.Take("broker:9092")
	ac := dialedOf(taken)
	if ac == nil || ac.Conn != conn || ac.lifetime != 2*time.Hour || !ac.at.Equal(reauthAt) {
		t.Fatalf("took %#v, want the connection with the re-authenticated session", taken)
	}
	_ = taken.Close()
}

// TestReleaseWithoutPoolCloses: a lane with no pool closes on Release.
func TestReleaseWithoutPoolCloses(t *testing.T) {
	defer goleak.VerifyNone(t)
	conn, broker := tcpPair(t)
	h := newFakeHandler()
	l := NewLane[owner](nil, conn, "", h, testLaneOptions(), prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"}))
	laneRoundTrip(t, l, h, broker, 1)
	l.Release()
	waitDone(t, h)
	brokerSeesClose(t, broker)
	var nilPool *Pool
	if c, _ := nilPool.Take("broker:9092"); c != nil {
		t.Fatal("a nil pool handed out a connection")
	}
}

// unwrap is the connection under what Take hands out.
func unwrap(c net.Conn) net.Conn {
	if dc := dialedOf(c); dc != nil {
		return dc.Conn
	}
	if pc, ok := c.(*pooledConn); ok {
		return pc.Conn
	}
	return c
}

// dialedOf is how what Take hands out was dialed; nil when that is unknown.
func dialedOf(c net.Conn) *dialedConn {
	if pc, ok := c.(*pooledConn); ok {
		c = pc.Conn
	}
	dc, _ := c.(*dialedConn)
	return dc
}

// TestPoolKeepsTheIdleClock: a connection taken and given back without
// carrying a request keeps the time of its last traffic; one that carried
// one restarts from its answer.
func TestPoolKeepsTheIdleClock(t *testing.T) {
	defer goleak.VerifyNone(t)
	p, _ := testPool(t, 4, time.Minute)
	conn, broker := tcpPair(t)
	last := time.Now().Add(-30 * time.Second)
	p.put("broker:9092", conn, last)
	taken, _ := p.Take("broker:9092")
	l, h := pooledLane(t, p, taken)
	l.Release()
	waitDone(t, h)
	idleSince := func() time.Time {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.idle["broker:9092"][0].idleSince
	}
	if got := idleSince(); !got.Equal(last) {
		t.Fatalf("unused lane gave back idle since %v, want %v", got, last)
	}
	taken, _ = p.Take("broker:9092")
	l, h = pooledLane(t, p, taken)
	before := time.Now()
	laneRoundTrip(t, l, h, broker, 1)
	l.Release()
	waitDone(t, h)
	if got := idleSince(); got.Before(before) {
		t.Fatalf("lane that carried a request gave back idle since %v, before its answer", got)
	}
}

// tlsPair is tcpPair under TLS 1.3, handshake done; the server sends
// session tickets after the handshake, as Go's and Java's do.
func tlsPair(t *testing.T) (proxy, broker net.Conn) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	rawProxy, rawBroker := tcpPair(t)
	server := tls.Server(rawBroker, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	client := tls.Client(rawProxy, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	errs := make(chan error, 1)
	go func() { errs <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestPoolReuseOverTLS: interrupting a TLS lane's reader with a deadline
// leaves the TLS state intact (a timeout is not a permanent error in
// crypto/tls), so the next lane reads and writes records where the last
// one stopped.
func TestPoolReuseOverTLS(t *testing.T) {
	defer goleak.VerifyNone(t)
	p, m := testPool(t, 4, time.Minute)
	conn, broker := tlsPair(t)
	l, h := pooledLane(t, p, conn)
	laneRoundTrip(t, l, h, broker, 1)
	l.Release()
	if err := waitDone(t, h); err != nil {
		t.Fatal(err)
	}
	taken, _ := p.Take("broker:9092")
	if taken == nil {
		t.Fatalf("TLS connection not pooled (discards: unclean %v, broken %v)",
			discards(m, metrics.PoolDiscardUnclean), discards(m, metrics.PoolDiscardBroken))
	}
	l2, h2 := pooledLane(t, p, taken)
	for corr := int32(2); corr < 5; corr++ {
		laneRoundTrip(t, l2, h2, broker, corr)
	}
	l2.Close()
	waitDone(t, h2)
}
