package upstream

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kproxy/kproxy/internal/bufpool"
)

// socketTail copies the rest of a frame from a socket, as a session does.
type socketTail struct{ lr io.LimitedReader }

func (s *socketTail) WriteTail(conn *net.TCPConn) (int64, error) {
	n, err := conn.ReadFrom(&s.lr)
	if err == nil && s.lr.N > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func laneOverTCP(t *testing.T) (*Lane[owner], *fakeHandler, net.Conn) {
	t.Helper()
	client, broker := tcpPair(t)
	h := newFakeHandler()
	opts := &LaneOptions{
		Pool: bufpool.New(), MaxFrameBytes: 1 << 20,
		BytesIn:  prometheus.NewCounter(prometheus.CounterOpts{Name: "in"}),
		BytesOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "out"}),
	}
	l := NewLane[owner](nil, client, "", h, opts, prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"}))
	t.Cleanup(l.Close)
	return l, h, broker
}

// TestLaneSendTailSplices: a frame whose rest is still in a client's
// socket reaches the broker whole and byte for byte, and its answer comes
// back to its owner.
func TestLaneSendTailSplices(t *testing.T) {
	l, h, broker := laneOverTCP(t)
	src, client := tcpPair(t) // the client writes src; the tail reads client
	frame := make([]byte, 3<<20)
	_, _ = rand.Read(frame)
	frame[0], frame[1], frame[2], frame[3] = 0, 0x30, 0, 0 // 3 MiB - 4
	frame[8], frame[9], frame[10], frame[11] = 0, 0, 0, 9  // correlation id 9
	const head = 60 << 10
	go func() { _, _ = src.Write(frame[head:]) }()
	got := make(chan []byte)
	go func() {
		b := make([]byte, len(frame))
		_, _ = io.ReadFull(broker, b)
		got <- b
	}()
	hb := bufpool.Wrap(bytes.Clone(frame[:head]))
	sent, err := l.SendTail(hb, &socketTail{io.LimitedReader{R: client.(*net.TCPConn), N: int64(len(frame) - head)}}, 9, true, 77)
	if !sent || err != nil {
		t.Fatalf("SendTail: %v, %v", sent, err)
	}
	if b := <-got; !bytes.Equal(b, frame) {
		t.Fatal("the broker received other bytes than the frame")
	}
	answer(t, broker, 9, "ok")
	eventually(t, func() bool { return h.answered() == 1 })
	if o := h.owners()[0]; o != 77 {
		t.Fatalf("answer went to %v", o)
	}
}

// TestLaneSendTailDeclines: SendTail takes nothing on a connection that is
// not plain TCP, while a frame is queued or being written (it would come
// between), or while a request is in flight (the broker reads the
// connection again only once it has answered, and the session's reader
// would wait on it), and reports a closed lane as Send does.
func TestLaneSendTailDeclines(t *testing.T) {
	tail := &socketTail{}
	pipe, _, _, _ := laneOverPipe(t, 0)
	if sent, err := pipe.SendTail(request(1), tail, 1, true, 0); sent || err != nil {
		t.Fatalf("over net.Pipe: %v, %v", sent, err)
	}
	l, _, _ := laneOverTCP(t)
	if err := l.Send(request(5), 5, true, 5); err != nil {
		t.Fatal(err)
	}
	if sent, err := l.SendTail(request(1), tail, 1, true, 1); sent || err != nil {
		t.Fatalf("a request in flight: %v, %v", sent, err)
	}
	if info := l.Info(); info.Pending != 1 {
		t.Fatalf("a declined frame left %d pending, want the one in flight", info.Pending)
	}
	l.mu.Lock()
	l.pending, l.head = l.pending[:0], 0 // as if answered
	l.mu.Unlock()
	for _, busy := range []func(){
		func() { l.writing = true },
		func() { l.writing, l.queue = false, append(l.queue, request(2)) },
	} {
		l.mu.Lock()
		busy()
		l.mu.Unlock()
		if sent, err := l.SendTail(request(1), tail, 1, true, 1); sent || err != nil {
			t.Fatalf("busy lane: %v, %v", sent, err)
		}
		if info := l.Info(); info.Pending != 0 {
			t.Fatalf("a declined frame left %d pending", info.Pending)
		}
	}
	l.mu.Lock()
	l.queue = l.queue[:0]
	l.mu.Unlock()
	l.Close()
	if sent, err := l.SendTail(request(1), tail, 1, true, 1); sent || !errors.Is(err, ErrLaneClosed) {
		t.Fatalf("closed lane: %v, %v", sent, err)
	}
}
