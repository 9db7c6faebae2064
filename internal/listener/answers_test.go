package listener

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/budget"
	"github.com/kproxy/kproxy/internal/bufpool"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/router"
)

// fakeOwner records what the queue tells its session.
type fakeOwner struct {
	mu        sync.Mutex
	failed    chan string
	delivered int
}

func (o *fakeOwner) answerWriteFailed(reason string, _ error) {
	select {
	case o.failed <- reason:
	default:
	}
}

func (o *fakeOwner) answersWritten(int) {}

func (o *fakeOwner) answersDelivered() {
	o.mu.Lock()
	o.delivered++
	o.mu.Unlock()
}

type queueEnv struct {
	q      *answerQueue
	client net.Conn
	owner  *fakeOwner
	budget *budget.Budget
	instr  *instruments
	done   chan struct{}
}

// connPair is a connected pair: proxy side, client side. tcp: a loopback
// TCP connection (raw writes); otherwise net.Pipe (every write may wait).
func connPair(t *testing.T, tcp bool) (net.Conn, net.Conn) {
	if !tcp {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return a, b
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return server, client
}

func newQueueEnv(t *testing.T, tcp, relaxed bool, writeTimeout time.Duration) *queueEnv {
	p := router.NewProtocol()
	c, err := router.NewClassifier(p, config.DefaultGroups())
	if err != nil {
		t.Fatal(err)
	}
	server, client := connPair(t, tcp)
	e := &queueEnv{client: client, owner: &fakeOwner{failed: make(chan string, 1)}, budget: budget.New(1<<30, nil, nil),
		instr: newInstruments(metrics.NewNop(), p, c), done: make(chan struct{})}
	ord := &sessionOrdering{acc: make([]uint64, 2*c.Len())}
	ord.relaxed.Store(relaxed)
	bar := newSessionBarriers(router.NewBarriers(c))
	e.q = newAnswerQueue(server, bufpool.New(), e.budget.NewAccount(), e.instr, make(chan struct{}, 64), e.done, writeTimeout, e.owner, ord, &bar, func() bool { return false })
	t.Cleanup(func() { e.q.close() })
	return e
}

// push owes one answer, taking its token as the session reader does.
func (e *queueEnv) push(corr int32) *slot {
	e.q.tokens <- struct{}{}
	return e.q.push(router.RequestHeader{Key: router.KeyMetadata, CorrelationID: corr}, 0, 0, nil, 0, router.Scopes{})
}

// answer completes sl with a frame of n body bytes carrying corr.
func (e *queueEnv) answer(sl *slot, corr int32, n int) {
	b := e.q.buffer(sl, 8+n)
	binary.BigEndian.PutUint32(b.B, uint32(4+n))
	binary.BigEndian.PutUint32(b.B[4:], uint32(corr))
	e.q.complete(sl, b)
}

func readCorr(t *testing.T, c net.Conn) int32 {
	t.Helper()
	var hdr [8]byte
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(hdr[:])-4)); err != nil {
		t.Fatal(err)
	}
	return int32(binary.BigEndian.Uint32(hdr[4:]))
}

func forBoth(t *testing.T, f func(t *testing.T, tcp bool)) {
	t.Run("tcp", func(t *testing.T) { f(t, true) })
	t.Run("pipe", func(t *testing.T) { f(t, false) })
}

// Strict: answers go out in request order whatever order they complete
// in; relaxed: as they complete. Every byte and token comes back.
func TestAnswerQueueOrder(t *testing.T) {
	forBoth(t, func(t *testing.T, tcp bool) {
		for _, relaxed := range []bool{false, true} {
			e := newQueueEnv(t, tcp, relaxed, time.Second)
			s1, s2, s3 := e.push(1), e.push(2), e.push(3)
			e.answer(s3, 3, 100)
			e.answer(s2, 2, 70000)
			if relaxed {
				if a, b := readCorr(t, e.client), readCorr(t, e.client); a != 3 || b != 2 {
					t.Fatalf("relaxed: %d, %d first; want 3, 2", a, b)
				}
			}
			e.answer(s1, 1, 10)
			want := []int32{1, 2, 3}
			if relaxed {
				want = []int32{1}
			}
			for _, w := range want {
				if got := readCorr(t, e.client); got != w {
					t.Fatalf("relaxed %v: answer %d, want %d", relaxed, got, w)
				}
			}
			waitUntil(t, "bytes and tokens back", func() bool { return e.budget.Used() == 0 && len(e.q.tokens) == 0 })
		}
	})
}

// A client that reads nothing: completing its answers never blocks the
// caller (a lane reader), and the session fails as client_write_timeout.
func TestAnswerQueueWriteTimeout(t *testing.T) {
	forBoth(t, func(t *testing.T, tcp bool) {
		e := newQueueEnv(t, tcp, false, 200*time.Millisecond)
		returned := make(chan struct{})
		go func() {
			for i := range int32(32) {
				e.answer(e.push(i), i, 1<<20) // far more than socket buffers hold, within the share
			}
			close(returned)
		}()
		select {
		case <-returned:
		case <-time.After(10 * time.Second):
			t.Fatal("completing answers waited on a client that reads nothing")
		}
		if reason := <-e.owner.failed; reason != reasonClientWriteTimeout {
			t.Fatalf("failed as %q, want %q", reason, reasonClientWriteTimeout)
		}
		close(e.done)
		e.q.close()
		if e.budget.Used() != 0 {
			t.Fatalf("%d bytes held after close", e.budget.Used())
		}
	})
}

// A slow reader that keeps reading is not timed out, and gets everything:
// it takes about twice the write timeout to read it all, but never stops
// for anywhere near that long (the timeout is long enough that a race-
// detector run on a busy machine does not starve the reader past it).
func TestAnswerQueueSlowReaderDelivered(t *testing.T) {
	forBoth(t, func(t *testing.T, tcp bool) {
		e := newQueueEnv(t, tcp, false, time.Second)
		const n = 6
		for i := range int32(n) {
			e.answer(e.push(i), i, 1<<20)
		}
		buf := make([]byte, 64<<10)
		read := 0
		for read < n*(1<<20+8) {
			_ = e.client.SetReadDeadline(time.Now().Add(10 * time.Second)) // a stop fails, not hangs
			m, err := e.client.Read(buf)
			if err != nil {
				t.Fatalf("after %d bytes: %v", read, err)
			}
			read += m
			time.Sleep(20 * time.Millisecond) // a slow client, not synchronisation
		}
		select {
		case reason := <-e.owner.failed:
			t.Fatalf("failed as %s while the client read", reason)
		default:
		}
		waitUntil(t, "bytes back", func() bool { return e.budget.Used() == 0 })
	})
}

// Nothing may be owed on a closed queue: push refuses, and every answer
// owed at close gives back its bytes and its in-flight count.
func TestAnswerQueueClose(t *testing.T) {
	e := newQueueEnv(t, true, false, time.Second)
	s1, s2 := e.push(1), e.push(2)
	e.answer(s2, 2, 1000) // held behind s1
	_ = s1
	if got := testutil.ToFloat64(e.instr.inflight[0]); got != 1 {
		t.Fatalf("in flight %v, want 1", got)
	}
	if owed := e.q.close(); owed != 2 {
		t.Fatalf("owed %d at close, want 2", owed)
	}
	if e.q.push(router.RequestHeader{}, 0, 0, nil, 0, router.Scopes{}) != nil {
		t.Fatal("push on a closed queue")
	}
	if got := testutil.ToFloat64(e.instr.inflight[0]); got != 0 || e.budget.Used() != 0 {
		t.Fatalf("in flight %v, %d bytes held after close", got, e.budget.Used())
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
