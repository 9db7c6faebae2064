package upstream

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kproxy/kproxy/internal/bufpool"
)

// socketTail copies the rest of a frame from a socket, as a session does.
type socketTail struct{ lr io.LimitedReader }

func (s *socketTail) TailLen() int64 { return s.lr.N }

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
	sent, err := l.SendTail(hb, &socketTail{io.LimitedReader{R: client.(*net.TCPConn), N: int64(len(frame) - head)}}, false, 9, true, 77)
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

// behindInFlight sets up a lane with request 5 in flight and a frame of
// size bytes (correlation id 9) whose first 16 KiB are in hand and whose
// rest a client is writing: want is what the broker must read, in order.
func behindInFlight(t *testing.T, size int) (l *Lane[owner], h *fakeHandler, broker net.Conn, head *bufpool.Buf, tail *socketTail, want []byte) {
	l, h, broker = laneOverTCP(t)
	first := request(5)
	want = bytes.Clone(first.B)
	if err := l.Send(first, 5, true, 5); err != nil {
		t.Fatal(err)
	}
	src, client := tcpPair(t)
	frame := make([]byte, size)
	_, _ = rand.Read(frame)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	binary.BigEndian.PutUint32(frame[8:], 9)
	const headLen = 16 << 10
	go func() { _, _ = src.Write(frame[headLen:]) }()
	tail = &socketTail{io.LimitedReader{R: client.(*net.TCPConn), N: int64(len(frame) - headLen)}}
	return l, h, broker, bufpool.Wrap(bytes.Clone(frame[:headLen])), tail, append(want, frame...)
}

// bothAnswered answers requests 5 and 9 and waits for the handler to have
// both.
func bothAnswered(t *testing.T, h *fakeHandler, broker net.Conn) {
	answer(t, broker, 5, "a")
	answer(t, broker, 9, "b")
	eventually(t, func() bool { return h.answered() == 2 })
}

// TestLaneSendTailTrickledHead: a frame whose tail a client trickles
// reaches the head of the lane, for the stall timer, only when its last
// byte is written: until then the broker cannot start on it.
func TestLaneSendTailTrickledHead(t *testing.T) {
	l, _, broker := laneOverTCP(t)
	src, client := tcpPair(t)
	frame := make([]byte, 64<<10)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	binary.BigEndian.PutUint32(frame[8:], 9)
	const head, chunks, pause = 16 << 10, 4, 100 * time.Millisecond
	go func() {
		rest := frame[head:]
		for i := range chunks {
			time.Sleep(pause)
			_, _ = src.Write(rest[i*len(rest)/chunks : (i+1)*len(rest)/chunks])
		}
	}()
	go func() { _, _ = io.Copy(io.Discard, broker) }()
	start := time.Now()
	tail := &socketTail{io.LimitedReader{R: client.(*net.TCPConn), N: int64(len(frame) - head)}}
	if sent, err := l.SendTail(bufpool.Wrap(bytes.Clone(frame[:head])), tail, false, 9, true, 9); !sent || err != nil {
		t.Fatalf("SendTail: %v, %v", sent, err)
	}
	var since time.Time
	l.Head(func(_ owner, at time.Time) { since = at })
	if trickled := start.Add(chunks * pause); since.Before(trickled) {
		t.Fatalf("the frame is at the broker's head since %v after the send began, before its tail had arrived (%v)", since.Sub(start), chunks*pause)
	}
}

// TestLaneSendTailMayWait: a caller that may wait on the broker has its
// frame spliced with a request in flight even when the send buffer cannot
// take it whole; the splice goes at the broker's pace.
func TestLaneSendTailMayWait(t *testing.T) {
	l, h, broker, head, tail, want := behindInFlight(t, 12<<20) // more than a socket's send buffer
	got := make(chan []byte)
	go func() {
		time.Sleep(50 * time.Millisecond) // a broker busy with the first request
		b := make([]byte, len(want))
		_, _ = io.ReadFull(broker, b)
		got <- b
	}()
	if l.room.takes(int64(len(want))) {
		t.Skip("this machine's send buffers take 12 MiB: the case cannot be made")
	}
	if sent, err := l.SendTail(head, tail, true, 9, true, 9); !sent || err != nil {
		t.Fatalf("SendTail that may wait: %v, %v", sent, err)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatal("the broker received other bytes than the two frames in order")
	}
	bothAnswered(t, h, broker)
}

// TestLaneSendTailDeclines: SendTail takes nothing on a connection that is
// not plain TCP, while a frame is queued or being written (it would come
// between), or while a request is in flight (the broker reads the
// connection again only once it has answered, and the session's reader
// would wait on it), and reports a closed lane as Send does.
func TestLaneSendTailDeclines(t *testing.T) {
	tail := &socketTail{}
	pipe, _, _, _ := laneOverPipe(t, 0)
	if sent, err := pipe.SendTail(request(1), tail, false, 1, true, 0); sent || err != nil {
		t.Fatalf("over net.Pipe: %v, %v", sent, err)
	}
	l, _, _ := laneOverTCP(t)
	if err := l.Send(request(5), 5, true, 5); err != nil {
		t.Fatal(err)
	}
	huge := &socketTail{io.LimitedReader{N: 1 << 30}} // more than any send buffer
	if sent, err := l.SendTail(request(1), huge, false, 1, true, 1); sent || err != nil {
		t.Fatalf("a request in flight and a tail the send buffer cannot take: %v, %v", sent, err)
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
		if sent, err := l.SendTail(request(1), tail, false, 1, true, 1); sent || err != nil {
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
	if sent, err := l.SendTail(request(1), tail, false, 1, true, 1); sent || !errors.Is(err, ErrLaneClosed) {
		t.Fatalf("closed lane: %v, %v", sent, err)
	}
}
