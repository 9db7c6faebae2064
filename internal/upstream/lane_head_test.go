package upstream

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kproxy/kproxy/internal/bufpool"
)

// newPipeLane is a lane over net.Pipe; the other end is the broker.
func newPipeLane(t *testing.T, h *fakeHandler) (*testLane, net.Conn) {
	proxy, broker := net.Pipe()
	t.Cleanup(func() { broker.Close() })
	opts := &LaneOptions{Pool: bufpool.New(), MaxFrameBytes: 1 << 20,
		BytesIn: prometheus.NewCounter(prometheus.CounterOpts{Name: "in"}), BytesOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "out"})}
	l := NewLane[owner](nil, proxy, "", h, opts, prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"}))
	t.Cleanup(func() {
		l.Close()
		<-h.done
	})
	return l, broker
}

// brokerReads reads request frames at the broker end (a pipe write waits
// for its reader) and hands over their correlation ids.
func brokerReads(c net.Conn) <-chan int32 {
	out := make(chan int32, 16)
	go func() {
		defer close(out)
		var b [12]byte
		for {
			if _, err := io.ReadFull(c, b[:]); err != nil {
				return
			}
			out <- int32(binary.BigEndian.Uint32(b[8:]))
		}
	}()
	return out
}

func brokerAnswer(t *testing.T, c net.Conn, corr int32) {
	t.Helper()
	b := binary.BigEndian.AppendUint32(nil, 4)
	if _, err := c.Write(binary.BigEndian.AppendUint32(b, uint32(corr))); err != nil {
		t.Fatal(err)
	}
}

func head(l *testLane) (o owner, since time.Time, ok bool) {
	l.Head(func(ho owner, s time.Time) { o, since, ok = ho, s, true })
	return
}

// Head is the request the broker works on, timed from when it got there:
// a request pipelined behind it starts its clock at the answer before it.
func TestLaneHeadClockStartsAtTheHead(t *testing.T) {
	h := &fakeHandler{done: make(chan error, 1)}
	l, broker := newPipeLane(t, h)
	reads := brokerReads(broker)
	if _, _, ok := head(l); ok {
		t.Fatal("a head with nothing pending")
	}
	for corr := range int32(2) {
		if err := l.Send(request(corr), corr, true, corr); err != nil {
			t.Fatal(err)
		}
		<-reads
	}
	owner, first, ok := head(l)
	if !ok || owner != 0 {
		t.Fatalf("head %v %v, want request 0", owner, ok)
	}
	before := time.Now()
	brokerAnswer(t, broker, 0)
	for h.answered() < 1 {
		time.Sleep(time.Millisecond)
	}
	owner, second, ok := head(l)
	if !ok || owner != 1 || second.Before(before) || !second.After(first) {
		t.Fatalf("head %v since %v (first %v, answer at or after %v), want request 1 timed from the answer", owner, second, first, before)
	}
	brokerAnswer(t, broker, 1)
	for h.answered() < 2 {
		time.Sleep(time.Millisecond)
	}
	if _, _, ok := head(l); ok {
		t.Fatal("a head after every answer")
	}
}

// A session that is gone when its answer arrives (no buffer) stops the lane.
func TestLaneStopsWhenTheSessionRefusesABuffer(t *testing.T) {
	h := &fakeHandler{done: make(chan error, 1), refuse: true}
	proxy, broker := net.Pipe()
	defer broker.Close()
	reads := brokerReads(broker)
	opts := &LaneOptions{Pool: bufpool.New(), MaxFrameBytes: 1 << 20,
		BytesIn: prometheus.NewCounter(prometheus.CounterOpts{Name: "in"}), BytesOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "out"})}
	l := NewLane[owner](nil, proxy, "", h, opts, prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"}))
	if err := l.Send(request(1), 1, true, 1); err != nil {
		t.Fatal(err)
	}
	<-reads
	brokerAnswer(t, broker, 1)
	if err := <-h.done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("lane done with %v, want the session's close", err)
	}
	if h.answered() != 0 {
		t.Fatal("an answer delivered without a buffer")
	}
}
