package upstream

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kproxy/kproxy/internal/bufpool"
)

// owner is what the tests' requests carry: their correlation id, as a rule.
type owner = int32

// testLane is a lane as the tests run it.
type testLane = Lane[owner]

// fakeHandler is a session as far as a lane can tell: it records what the
// lane hands back.
type fakeHandler struct {
	mu      sync.Mutex
	answers []owner // in the order their answers arrived
	frames  [][]byte
	refuse  bool // LaneBuffer reports the session gone
	done    chan error
	dones   atomic.Int32 // LaneDone calls
}

func newFakeHandler() *fakeHandler { return &fakeHandler{done: make(chan error, 4)} }

func (h *fakeHandler) LaneResponse(owner owner, frame *bufpool.Buf) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.answers = append(h.answers, owner)
	h.frames = append(h.frames, append([]byte(nil), frame.B...))
}

func (h *fakeHandler) LaneStream(owner, []byte, io.Reader, int) (bool, error) { return false, nil }

func (h *fakeHandler) LaneBuffer(_ owner, n int) *bufpool.Buf {
	if h.refuse {
		return nil
	}
	return bufpool.Wrap(make([]byte, n))
}

func (h *fakeHandler) LaneDone(_ *testLane, err error) {
	h.dones.Add(1)
	h.done <- err
}

func (h *fakeHandler) answered() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.answers)
}

func (h *fakeHandler) owners() []owner {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]owner(nil), h.answers...)
}

// laneOverPipe starts a lane whose broker side is the returned conn.
func laneOverPipe(t *testing.T, idle time.Duration) (*testLane, *fakeHandler, net.Conn, prometheus.Gauge) {
	t.Helper()
	client, broker := net.Pipe()
	t.Cleanup(func() { broker.Close() })
	h := newFakeHandler()
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"})
	opts := &LaneOptions{
		Pool: bufpool.New(), MaxFrameBytes: 1 << 20, IdleTimeout: idle,
		BytesIn:  prometheus.NewCounter(prometheus.CounterOpts{Name: "in"}),
		BytesOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "out"}),
	}
	l := NewLane[owner](nil, client, "", h, opts, gauge)
	t.Cleanup(l.Close)
	return l, h, broker, gauge
}

// request is a minimal request frame: size, key, version, correlation id.
func request(corr int32) *bufpool.Buf {
	b := make([]byte, 12)
	binary.BigEndian.PutUint32(b, 8)
	binary.BigEndian.PutUint32(b[8:], uint32(corr))
	return bufpool.Wrap(b)
}

// readRequest reads one request frame on the broker side and returns its
// correlation id.
func readRequest(t *testing.T, c net.Conn) int32 {
	t.Helper()
	var hdr [12]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("broker read: %v", err)
	}
	return int32(binary.BigEndian.Uint32(hdr[8:]))
}

// answer writes a response frame with corr and a payload.
func answer(t *testing.T, c net.Conn, corr int32, payload string) {
	t.Helper()
	if _, err := c.Write(answerFrame(corr, payload)); err != nil {
		t.Fatalf("broker write: %v", err)
	}
}

func answerFrame(corr int32, payload string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(4+len(payload)))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	return append(b, payload...)
}

// sendAsync sends from its own goroutine: a net.Pipe write blocks until the
// broker side reads it, and a lane with nothing in flight writes a small
// request from the caller's goroutine.
func sendAsync(t *testing.T, l *testLane, corr int32, expect bool) {
	t.Helper()
	go func() {
		if err := l.Send(request(corr), corr, expect, corr); err != nil {
			t.Errorf("send %d: %v", corr, err)
		}
	}()
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
	}
}

func waitDone(t *testing.T, h *fakeHandler) error {
	t.Helper()
	select {
	case err := <-h.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the lane never reported that it stopped")
		return nil
	}
}

// TestLanePipelinedInOrder: pipelined requests reach the broker in order and
// each answer goes back with its own owner.
func TestLanePipelinedInOrder(t *testing.T) {
	l, h, broker, gauge := laneOverPipe(t, 0)
	if got := testutil.ToFloat64(gauge); got != 1 {
		t.Fatalf("gauge %v with a lane open, want 1", got)
	}
	const n = 50
	go func() {
		for i := range int32(n) {
			if err := l.Send(request(i), i, true, i); err != nil {
				t.Errorf("send %d: %v", i, err)
			}
		}
	}()
	for i := range int32(n) {
		if corr := readRequest(t, broker); corr != i {
			t.Fatalf("broker read request %d in place %d", corr, i)
		}
		answer(t, broker, i, "x")
	}
	eventually(t, func() bool { return len(h.owners()) == n })
	for i, o := range h.owners() {
		if o != owner(i) {
			t.Fatalf("answer %d went to owner %v", i, o)
		}
	}
	l.Close()
	if err := waitDone(t, h); err != nil {
		t.Errorf("a lane closed with nothing pending reported %v", err)
	}
	eventually(t, func() bool { return testutil.ToFloat64(gauge) == 0 })
	if err := l.Send(request(99), 99, true, 99); !errors.Is(err, ErrLaneClosed) {
		t.Errorf("send on a stopped lane: %v, want ErrLaneClosed", err)
	}
}

// TestLaneCorrelationMismatch: an answer for the wrong request is a broker
// protocol error; the lane fails and says so.
func TestLaneCorrelationMismatch(t *testing.T) {
	l, h, broker, _ := laneOverPipe(t, 0)
	sendAsync(t, l, 7, true)
	readRequest(t, broker)
	answer(t, broker, 8, "x")
	err := waitDone(t, h)
	if err == nil || !strings.Contains(err.Error(), "correlation id mismatch") {
		t.Fatalf("lane stopped with %v, want a correlation id mismatch", err)
	}
	if len(h.owners()) != 0 {
		t.Errorf("a mismatched answer was delivered: %v", h.owners())
	}
}

// TestLaneBrokerCloses: a broker closing with a request in flight is a
// failure the session must see; closing an idle connection is not.
func TestLaneBrokerCloses(t *testing.T) {
	t.Run("in_flight", func(t *testing.T) {
		l, h, broker, _ := laneOverPipe(t, 0)
		sendAsync(t, l, 1, true)
		readRequest(t, broker)
		broker.Close()
		if err := waitDone(t, h); err == nil {
			t.Fatal("a broker closing on a pending request reported no error")
		}
	})
	t.Run("idle", func(t *testing.T) {
		l, h, broker, _ := laneOverPipe(t, 0)
		sendAsync(t, l, 1, true)
		readRequest(t, broker)
		answer(t, broker, 1, "x")
		eventually(t, func() bool { return len(h.owners()) == 1 })
		broker.Close()
		if err := waitDone(t, h); err != nil {
			t.Fatalf("an idle connection closing reported %v", err)
		}
	})
	t.Run("after_acks0", func(t *testing.T) {
		l, h, broker, _ := laneOverPipe(t, 0)
		sendAsync(t, l, 1, false)
		readRequest(t, broker)
		broker.Close() // a broker's only way to report an acks=0 error
		err := waitDone(t, h)
		if err == nil || !strings.Contains(err.Error(), "acks=0") {
			t.Fatalf("close after an acks=0 produce reported %v, want the acks=0 failure", err)
		}
	})
}

// TestLaneIdleTimeout: a lane with nothing in flight closes itself after
// the idle timeout, reporting no error; a request keeps it open.
func TestLaneIdleTimeout(t *testing.T) {
	l, h, broker, _ := laneOverPipe(t, 50*time.Millisecond)
	sendAsync(t, l, 1, true)
	readRequest(t, broker)
	time.Sleep(100 * time.Millisecond) // past the idle timeout, with a request in flight
	select {
	case err := <-h.done:
		t.Fatalf("lane stopped with a request in flight: %v", err)
	default:
	}
	answer(t, broker, 1, "x")
	if err := waitDone(t, h); err != nil {
		t.Fatalf("idle close reported %v", err)
	}
	if err := l.Send(request(2), 2, true, 2); !errors.Is(err, ErrLaneClosed) {
		t.Errorf("send after the idle close: %v, want ErrLaneClosed", err)
	}
}

// TestLaneOversizedAnswer: an answer larger than limits.max_frame_bytes
// fails the lane before anything is allocated for it.
func TestLaneOversizedAnswer(t *testing.T) {
	l, h, broker, _ := laneOverPipe(t, 0)
	sendAsync(t, l, 1, true)
	readRequest(t, broker)
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:], 1<<30)
	binary.BigEndian.PutUint32(hdr[4:], 1)
	go broker.Write(hdr[:])
	err := waitDone(t, h)
	if err == nil || !strings.Contains(err.Error(), "max_frame_bytes") {
		t.Fatalf("oversized answer: %v", err)
	}
}
