package listener

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kproxy/kproxy/internal/bridge"
	"github.com/kproxy/kproxy/internal/budget"
	"github.com/kproxy/kproxy/internal/bufpool"
	"github.com/kproxy/kproxy/internal/router"
)

// answerQueue holds the answers a session owes its client, in request
// order, and writes them: strict ordering the done answers at the head of
// the queue, relaxed ordering every done answer. It owns the client socket's
// write side, the write deadline and the memory the answers hold.
//
// Whoever makes an answer ready calls deliver. The first caller becomes the
// writer and writes until nothing more is ready, so an answer usually leaves
// from the goroutine that completed it, with no hand-off. Those writes never
// wait on the client's socket: a lane reader writes only what the socket
// takes at once, and a client that is not reading gets a writer goroutine
// of its own, which waits at most limits.client_write_timeout for progress.
type answerQueue struct {
	conn         net.Conn
	pool         *bufpool.Pool
	acct         *budget.Account
	instr        *instruments
	tokens       chan struct{}   // one per answer owed; the queue gives one back per answer written
	done         <-chan struct{} // closed with the session
	writeTimeout time.Duration
	owner        answerOwner
	raw          rawWriter
	isTLS        bool // a timed-out write breaks a TLS connection for good

	ord      *sessionOrdering
	bar      *sessionBarriers
	start    time.Time   // the session's, for the head-of-line estimate
	holdOpen func() bool // the fetch wait budget is on: note answers held behind a Fetch

	mu      sync.Mutex
	slots   []*slot
	head    int
	writing bool // a goroutine is the writer
	closed  bool

	lastWrite atomic.Int64 // unix nanos: an answer was last written, or the queue was created

	// owned by the writer
	iov, out net.Buffers
	batch    []*slot
}

// answerOwner is told what the queue cannot decide itself.
type answerOwner interface {
	// answerWriteFailed: the client cannot be written to; the session ends.
	answerWriteFailed(reason string, err error)
	// answersDelivered: nothing is owed any more.
	answersDelivered()
	// answersWritten: n bytes of answers went to the client.
	answersWritten(n int)
}

// slot is one answer owed to the client.
type slot struct {
	key, version int16
	group        router.Group
	// lane is the lane the request went on: its group's, or a group
	// coordinator's past the classifier's groups (bridge.go).
	lane         router.Group
	sent, doneAt time.Time
	frame        *bufpool.Buf
	done         bool
	snap         []uint64      // sessionOrdering.acc when the request was sent
	wait         time.Duration // the request's own timeout (stall.go)
	scopes       router.Scopes // what a later request's barrier compares (barrier.go)
	// bridge: the request went up translated; its answer comes back down
	// to the client's version (bridge.go).
	bridge *bridge.Exchange
}

var slotPool = sync.Pool{New: func() any { return new(slot) }}

// errClientWriteTimeout: the client read nothing for limits.client_write_timeout.
var errClientWriteTimeout = errors.New("client read nothing")

func newAnswerQueue(conn net.Conn, pool *bufpool.Pool, acct *budget.Account, instr *instruments, tokens chan struct{}, done <-chan struct{}, writeTimeout time.Duration, owner answerOwner, ord *sessionOrdering, bar *sessionBarriers, holdOpen func() bool) *answerQueue {
	q := &answerQueue{conn: conn, pool: pool, acct: acct, instr: instr, tokens: tokens, done: done, writeTimeout: writeTimeout, owner: owner, ord: ord, bar: bar, start: time.Now(), holdOpen: holdOpen}
	q.raw.init(conn)
	_, q.isTLS = conn.(*tls.Conn)
	q.lastWrite.Store(q.start.UnixNano())
	return q
}

// push reserves the client's next answer; frame is set for answers the
// proxy makes itself. It returns nil once the queue is closed: nothing may
// be owed on a session that has gone.
func (q *answerQueue) push(h router.RequestHeader, g, lane router.Group, frame *bufpool.Buf, wait time.Duration, scopes router.Scopes) *slot {
	sl := slotPool.Get().(*slot)
	now := time.Now()
	*sl = slot{key: h.Key, version: h.Version, group: g, lane: lane, sent: now, doneAt: now, frame: frame, done: frame != nil, snap: sl.snap, wait: wait, scopes: scopes}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.pool.Put(frame)
		*sl = slot{snap: sl.snap[:0]}
		slotPool.Put(sl)
		return nil
	}
	q.slots = append(q.slots, sl)
	if frame == nil {
		// In flight until complete, or until close finds it not done:
		// exactly one of the two decrements, under q.mu.
		q.instr.inflight[g].Inc()
		q.orderingPushed(sl)
	}
	q.mu.Unlock()
	return sl
}

// walkOwed calls fn for every answer owed, in request order, under the
// queue's lock.
func (q *answerQueue) walkOwed(fn func(*slot)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, sl := range q.slots[q.head:] {
		fn(sl)
	}
}

// owed is the number of answers not yet written.
func (q *answerQueue) owed() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.slots) - q.head
}

// isHead reports whether sl is the answer the client is owed next.
func (q *answerQueue) isHead(sl *slot) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.head < len(q.slots) && q.slots[q.head] == sl
}

// buffer returns a frame buffer of n bytes for sl's answer, charged to the
// session, waiting while the budget does not allow it; nil if the session
// closes first. The answer next in line may use the budget's reserve.
func (q *answerQueue) buffer(sl *slot, n int) *bufpool.Buf {
	c := bufpool.Cap(n)
	if !q.take(sl, c) {
		return nil
	}
	b := q.pool.Get(n)
	b.Charge(q.acct, c)
	return b
}

// take takes n bytes of budget for sl's answer, waiting while the budget
// does not allow it; false if the session closes first.
func (q *answerQueue) take(sl *slot, n int) bool {
	if q.tryTake(sl, n) {
		return true
	}
	q.acct.Hit()
	for {
		wake := q.acct.Wait()
		if q.tryTake(sl, n) {
			return true
		}
		select {
		case <-wake:
		case <-q.done:
			return false
		}
	}
}

// tryTake takes n bytes of budget for sl's answer if the rule of its place
// in line allows it now.
func (q *answerQueue) tryTake(sl *slot, n int) bool {
	kind := budget.Request
	if q.isHead(sl) {
		kind = budget.Head
	}
	return q.acct.TryTake(n, 0, kind)
}

// complete records an upstream answer and delivers what may go.
func (q *answerQueue) complete(sl *slot, frame *bufpool.Buf) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.pool.Put(frame)
		return
	}
	sl.frame, sl.done, sl.doneAt = frame, true, time.Now()
	q.orderingAnswered(sl, sl.doneAt)
	g := sl.group // the writer may recycle sl once q.mu is released
	q.mu.Unlock()
	q.instr.inflight[g].Dec()
	q.deliver()
}

// deliver writes every answer that may go now, without waiting on the
// client's socket.
func (q *answerQueue) deliver() {
	q.mu.Lock()
	if q.writing || q.closed {
		q.mu.Unlock() // the writer at work picks up what is ready now
		return
	}
	q.writing = true
	q.writeReady(false)
}

// writeReady is the writer's loop; q.mu held and q.writing set on entry,
// neither on return. blocking says whether this goroutine may wait on the
// client's socket (the queue's own writer goroutine) or must hand off.
func (q *answerQueue) writeReady(blocking bool) {
	for {
		q.batch = q.batch[:0]
		if q.ord.relaxed.Load() {
			q.takeCompleted()
		}
		for q.head < len(q.slots) && q.slots[q.head].done {
			q.batch = append(q.batch, q.slots[q.head])
			q.slots[q.head] = nil
			q.head++
		}
		if q.head == len(q.slots) {
			q.head, q.slots = 0, q.slots[:0]
		}
		if len(q.batch) == 0 {
			q.writing = false
			empty := len(q.slots) == 0
			q.mu.Unlock()
			if empty {
				q.owner.answersDelivered()
			}
			return
		}
		q.mu.Unlock()
		q.observeHolds()
		q.iov = q.iov[:0]
		for _, sl := range q.batch {
			q.iov = append(q.iov, sl.frame.B)
			for _, b := range sl.frame.More {
				q.iov = append(q.iov, b.B)
			}
		}
		q.out = q.iov
		if !blocking {
			all, err := q.tryWrite()
			if err != nil {
				q.written()
				q.fail(reasonClientWriteFailed, err)
				return
			}
			if !all {
				go q.writeBehind(nil) // q.writing stays set: the goroutine is the writer now
				return
			}
		} else if err := q.writeOut(); err != nil {
			q.written()
			q.fail(writeFailReason(err), err)
			return
		}
		q.written()
		q.mu.Lock()
	}
}

// writeBehind is the writer goroutine of a client that is not reading as
// fast as its answers come: it finishes q.out (after first, a streamed
// answer's rest), then goes on as the writer until nothing is ready.
func (q *answerQueue) writeBehind(first *bufpool.Buf) {
	if first != nil {
		err := q.writeOut()
		q.pool.Put(first)
		<-q.tokens
		if err != nil {
			q.fail(writeFailReason(err), err)
			return
		}
		q.lastWrite.Store(time.Now().UnixNano())
	} else {
		err := q.writeOut()
		q.written()
		if err != nil {
			q.fail(writeFailReason(err), err)
			return
		}
	}
	q.mu.Lock()
	q.writeReady(true)
}

func writeFailReason(err error) string {
	if errors.Is(err, errClientWriteTimeout) {
		return reasonClientWriteTimeout
	}
	return reasonClientWriteFailed
}

// written returns the batch's frames and tokens once it is out, or failed.
func (q *answerQueue) written() {
	for i, sl := range q.batch {
		q.pool.Put(sl.frame)
		*sl = slot{snap: sl.snap[:0]}
		slotPool.Put(sl)
		q.batch[i] = nil
		<-q.tokens
	}
	q.lastWrite.Store(time.Now().UnixNano())
	q.acct.Nudge() // an answer waiting for budget may be next in line now
}

// tryWrite writes what the socket takes of q.out without waiting, and
// reports whether that was all of it.
func (q *answerQueue) tryWrite() (bool, error) {
	n, err := q.raw.tryWrite(&q.out)
	q.instr.clientOut.Add(float64(n))
	q.owner.answersWritten(n)
	return len(q.out) == 0, err
}

// writeOut writes all of q.out, failing once a write has made no progress
// for the write timeout.
func (q *answerQueue) writeOut() error {
	for len(q.out) > 0 {
		start := time.Now()
		if q.writeTimeout > 0 {
			_ = q.conn.SetWriteDeadline(start.Add(q.writeTimeout))
		}
		n, err := q.out.WriteTo(q.conn)
		q.instr.clientOut.Add(float64(n))
		q.owner.answersWritten(int(n))
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded) && n > 0 && !q.isTLS:
			// Progress: the client reads, slowly. A TLS connection is
			// broken after a timed-out write, so only plain sockets go on.
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("%w for limits.client_write_timeout %v with %d bytes of answers waiting", errClientWriteTimeout, q.writeTimeout, bufferedLen(q.out))
		default:
			return err
		}
	}
	return nil
}

func bufferedLen(b net.Buffers) (n int) {
	for _, x := range b {
		n += len(x)
	}
	return n
}

func (q *answerQueue) fail(reason string, err error) {
	if reason == reasonClientWriteFailed && (errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)) {
		// The client closed its end with answers owed: its choice, not a
		// failure to write.
		reason = reasonClientClosed
	}
	q.owner.answerWriteFailed(reason, err)
}

// close empties the queue; every answer still owed is dropped. It returns
// how many were owed.
func (q *answerQueue) close() int {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0
	}
	q.closed = true
	owed := q.slots[q.head:]
	q.slots, q.head = nil, 0
	q.mu.Unlock()
	for _, sl := range owed {
		if sl.done {
			q.pool.Put(sl.frame)
		} else {
			q.instr.inflight[sl.group].Dec()
		}
	}
	return len(owed)
}

// observeHolds records, for each answer about to be written, how long it
// waited since it was complete.
func (q *answerQueue) observeHolds() {
	now := time.Now()
	for _, sl := range q.batch {
		q.instr.hold[sl.group].Observe(now.Sub(sl.doneAt).Seconds())
	}
}

// takeCompleted moves every done answer into the batch, keeping the queue's
// order for the rest; q.mu held. Relaxed sessions only.
func (q *answerQueue) takeCompleted() {
	j := q.head
	for i := q.head; i < len(q.slots); i++ {
		if sl := q.slots[i]; sl.done {
			q.batch = append(q.batch, sl)
		} else {
			q.slots[j] = sl
			j++
		}
	}
	clear(q.slots[j:])
	q.slots = q.slots[:j]
}
