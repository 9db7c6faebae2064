package upstream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kproxy/kproxy/internal/bufpool"
)

// ErrLaneClosed is returned by Send on a lane that has stopped; the caller
// dials a new one. Nothing was sent.
var ErrLaneClosed = errors.New("lane closed")

// ErrClosedAfterAcks0 is what a lane reports when the broker closed it with
// nothing owed an answer but acks=0 produces no answer has followed yet.
var ErrClosedAfterAcks0 = errors.New("broker closed the connection after acks=0 produce (a broker's only way to report its error)")

var errIdleTimeout = errors.New("idle timeout")

// Handler receives what a lane reads. The session implements it; O is what
// it hands Send with each request (its owner) and gets back with the answer.
type Handler[O any] interface {
	// LaneResponse is called on the lane's reader goroutine with each
	// response frame, in request order. The handler owns frame.
	LaneResponse(owner O, frame *bufpool.Buf)
	// LaneStream is offered each answer of at least StreamMin body bytes
	// before its body is read. The handler may copy the body (exactly n
	// bytes of body) straight to its client and report true, or report
	// false to have the lane buffer the answer and call LaneResponse. An
	// error ends the lane.
	LaneStream(owner O, header []byte, body io.Reader, n int) (streamed bool, err error)
	// LaneBuffer returns the buffer, of n bytes, that a client's answer
	// is read into; it may wait for the memory budget. nil: the session
	// is gone, and the lane stops.
	LaneBuffer(owner O, n int) *bufpool.Buf
	// LaneDone is called exactly once, on the lane's reader goroutine, once
	// the lane has ended (however it ended: end) and its reader has
	// stopped; nothing else is called after it. err is nil when nothing was
	// lost: the lane was released or closed while idle (the proxy's idle
	// timer, or the broker closing an idle connection), and the session
	// goes on.
	LaneDone(l *Lane[O], err error)
}

// LaneOptions are shared by every lane of a proxy.
type LaneOptions struct {
	Pool          *bufpool.Pool
	MaxFrameBytes int
	IdleTimeout   time.Duration
	BytesIn       prometheus.Counter
	BytesOut      prometheus.Counter
}

// Lane is one upstream connection carrying one group of one client
// session's requests, pipelined. The broker answers in order, so a FIFO of
// pending correlation ids checks every response.
type Lane[O any] struct {
	conn  net.Conn
	h     Handler[O]
	opts  *LaneOptions
	gauge prometheus.Gauge

	mu      sync.Mutex
	queue   []*bufpool.Buf  // frames waiting for the writer
	pending []pending[O]    // requests sent or queued that expect an answer
	head    int             // first live entry of pending
	acks0   acks0Log        // acks=0 produces sent (lane_acks0.go)
	closed  bool            // ended: see end
	why     error           // the reason the lane ended with, first come
	reauth  *reauthState[O] // nil unless the SASL session expires (reauth.go)
	writing bool            // a write to conn is under way (writer goroutine or Send)
	// headAt is when the first pending request became the one the broker
	// works on: it answers a connection's requests one at a time, in
	// order. answering: its answer has begun to arrive.
	headAt    time.Time
	answering bool

	// Giving the connection back to a pool (lane_release.go).
	home      *Pool       // nil: Release closes
	addr      string      // the broker address, the connection's key in home
	idleSince time.Time   // the last answer, or the start: the broker's idle clock
	origin    *dialedConn // how conn was dialed: its settings' generation, when, its SASL session then

	wake chan struct{}
	done chan struct{}

	// writer state, owned by the writer goroutine
	batch    []*bufpool.Buf
	iov      net.Buffers
	out      net.Buffers
	coalesce bool     // conn has no writev: copy small frames into one write
	room     sendRoom // what the send buffer takes without the broker reading (SendTail)
}

// pending is a request that awaits its answer: a client's, handed back to
// the handler with its owner, or the lane's own SASL request, whose answer
// goes to auth (reauth.go).
type pending[O any] struct {
	corr  int32
	owner O
	auth  *authReply
	// acks0Before counts the acks=0 produces sent before it: its answer
	// confirms them.
	acks0Before int
}

// NewLane starts a lane over conn, an established connection to addr (a
// connection Take handed out, or one just dialed). Its Release gives the
// connection back to pool; a nil pool makes Release a Close. gauge counts
// open upstream connections for the lane's broker and group.
func NewLane[O any](pool *Pool, conn net.Conn, addr string, h Handler[O], opts *LaneOptions, gauge prometheus.Gauge) *Lane[O] {
	idleSince := time.Now() // a connection just dialed
	if pc, ok := conn.(*pooledConn); ok {
		conn, idleSince = pc.Conn, pc.idleSince
	}
	origin, ok := conn.(*dialedConn)
	if ok {
		conn = origin.Conn
	} else {
		origin = &dialedConn{Conn: conn, addr: addr, dialedAt: idleSince}
	}
	l := &Lane[O]{
		conn:     conn,
		h:        h,
		opts:     opts,
		gauge:    gauge,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		coalesce: !hasWritev(conn),
	}
	l.home, l.addr, l.idleSince, l.origin = pool, addr, idleSince, origin
	l.room.init(conn)
	gauge.Inc()
	go l.write()
	go l.read()
	if origin.lifetime > 0 {
		l.startReauth(origin)
	}
	return l
}

// Send queues a complete request frame (size prefix included). A request
// that expects a response holds a pending entry until its answer arrives;
// owner is handed back with that answer. The lane takes frame.
func (l *Lane[O]) Send(frame *bufpool.Buf, corr int32, expectResponse bool, owner O) error {
	l.mu.Lock()
	if l.closed || l.retireStaleLocked() {
		l.mu.Unlock()
		return ErrLaneClosed
	}
	if l.reauth != nil && l.reauth.holding {
		l.reauth.hold(frame, corr, expectResponse, owner)
		l.mu.Unlock()
		return nil
	}
	idle := l.enlistLocked(corr, expectResponse, owner)
	if idle && !l.writing && len(l.queue) == 0 && len(frame.B) <= directWriteMax {
		l.writing = true
		l.mu.Unlock()
		_ = l.writeDirect(frame, nil) // a failure is the reader's to report
		return nil
	}
	l.queue = append(l.queue, frame)
	l.mu.Unlock()
	l.wakeWriter()
	return nil
}

// enlistLocked counts a request about to be written: a pending entry when
// it expects an answer, else an acks=0 produce. It reports whether the lane
// was idle before it.
func (l *Lane[O]) enlistLocked(corr int32, expectResponse bool, owner O) (idle bool) {
	idle = l.idleLocked()
	quiet := l.head == len(l.pending) // no answer due: the idle timer may run
	if expectResponse {
		if quiet {
			// The idle timer, the lane's only read deadline, stops
			// while an answer is due.
			_ = l.conn.SetReadDeadline(time.Time{})
			l.headAt = time.Now()
		}
		l.pending = append(l.pending, pending[O]{corr: corr, owner: owner, acks0Before: l.acks0.sent})
	} else {
		now := time.Now()
		l.acks0.add(corr, now)
		if quiet {
			l.armIdleLocked(now) // restarted, as the broker's idle clock is by a request
		}
	}
	return idle
}

// armIdleLocked starts the idle timer at now (none when IdleTimeout is 0:
// no deadline is then ever set); with nothing but acks=0 produces
// unconfirmed, it ends the lane too (readFull: acks0Settled).
func (l *Lane[O]) armIdleLocked(now time.Time) {
	if l.opts.IdleTimeout > 0 {
		_ = l.conn.SetReadDeadline(now.Add(l.opts.IdleTimeout))
	}
}

// directWriteMax bounds the frames Send writes itself. A broker with nothing
// in flight on the connection is reading it, so a frame this small goes into
// the socket buffer without blocking the caller.
const directWriteMax = 64 << 10

// writeDirect writes one frame from the caller's goroutine, saving the
// hand-off to the writer goroutine (two scheduler wake-ups per request on
// the latency path). Send chose it only with nothing queued and no write
// under way, so order is kept; whatever was queued meanwhile goes to the
// writer. A tail, when not nil, follows the frame (SendTail); the error is
// the write's or the tail's, and fails the lane.
func (l *Lane[O]) writeDirect(frame *bufpool.Buf, tail Tail) error {
	n, err := l.conn.Write(frame.B)
	l.opts.Pool.Put(frame)
	if err == nil && tail != nil {
		var m int64
		m, err = tail.WriteTail(l.conn.(*net.TCPConn))
		n += int(m)
	}
	l.opts.BytesOut.Add(float64(n))
	l.mu.Lock()
	l.writing = false
	more := len(l.queue) > 0
	l.mu.Unlock()
	if err != nil {
		// The request is pending: the reader reports the failure.
		l.end(fmt.Errorf("write upstream: %w", err))
		return err
	}
	if more {
		l.wakeWriter()
	}
	return nil
}

func (l *Lane[O]) wakeWriter() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Head calls f, under the lane's lock, with the owner of the request the
// broker is working on and since when: the time it reached the head of the
// lane's queue, not the time it was sent (requests pipelined behind it
// wait their turn at the broker). f is not called with nothing pending, or
// once the head's answer has begun to arrive.
func (l *Lane[O]) Head(f func(owner O, since time.Time)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.answering || l.head == len(l.pending) || l.pending[l.head].auth != nil {
		return
	}
	f(l.pending[l.head].owner, l.headAt)
}

func (l *Lane[O]) idleLocked() bool {
	return l.head == len(l.pending) && l.acks0.unconfirmed() == 0 && (l.reauth == nil || !l.reauth.holding)
}

// write drains the queue into the connection: everything queued since the
// last write goes out in one writev, so pipelined requests batch naturally.
func (l *Lane[O]) write() {
	for {
		select {
		case <-l.wake:
		case <-l.done:
			return
		}
		l.mu.Lock()
		if l.writing {
			// Send is writing; it wakes us when it is done.
			l.mu.Unlock()
			continue
		}
		l.batch, l.queue = l.queue, l.batch[:0]
		l.writing = len(l.batch) > 0
		l.mu.Unlock()
		if len(l.batch) == 0 {
			continue
		}
		n, err := l.writeBatch()
		l.opts.BytesOut.Add(float64(n))
		for i, b := range l.batch {
			l.opts.Pool.Put(b)
			l.batch[i] = nil
		}
		l.mu.Lock()
		l.writing = false
		more := len(l.queue) > 0
		l.mu.Unlock()
		if more {
			l.wakeWriter()
		}
		if err != nil {
			l.end(fmt.Errorf("write upstream: %w", err))
			return
		}
	}
}

// writeBatch writes the batch: in one writev on a plain socket; on any
// other connection (TLS), whose Write sends each call as its own records
// and syscalls, small frames are first copied together into writes of up
// to coalesceMax bytes, and a frame that large goes out alone, uncopied.
func (l *Lane[O]) writeBatch() (int64, error) {
	if !l.coalesce || len(l.batch) == 1 {
		l.iov = l.iov[:0]
		for _, b := range l.batch {
			l.iov = append(l.iov, b.B)
		}
		l.out = l.iov
		return l.out.WriteTo(l.conn)
	}
	buf := l.opts.Pool.Get(coalesceMax)
	defer l.opts.Pool.Put(buf)
	buf.B = buf.B[:0]
	var total int64
	flush := func(b []byte) error {
		n, err := l.conn.Write(b)
		total += int64(n)
		return err
	}
	for _, b := range l.batch {
		if len(buf.B) > 0 && len(buf.B)+len(b.B) > coalesceMax {
			if err := flush(buf.B); err != nil {
				return total, err
			}
			buf.B = buf.B[:0]
		}
		if len(b.B) >= coalesceMax {
			if err := flush(b.B); err != nil {
				return total, err
			}
			continue
		}
		buf.B = append(buf.B, b.B...)
	}
	if len(buf.B) > 0 {
		return total, flush(buf.B)
	}
	return total, nil
}

// coalesceMax bounds one coalesced write: four full TLS records.
const coalesceMax = 64 << 10

// hasWritev reports whether net.Buffers.WriteTo sends to conn in one
// writev(2); for any other conn it calls Write once per buffer.
func hasWritev(conn net.Conn) bool {
	switch conn.(type) {
	case *net.TCPConn, *net.UnixConn:
		return true
	}
	return false
}

// read delivers responses in order until the connection ends, then
// finishes the lane.
func (l *Lane[O]) read() {
	l.finish(l.readLoop())
}

func (l *Lane[O]) readLoop() error {
	br := l.opts.Pool.NewReader(l.conn, 16<<10) // holds no buffer while the broker is quiet
	var hdr [8]byte
	for {
		if err := l.readFull(br, hdr[:]); err != nil {
			if err == errReleased && br.Buffered() > 0 {
				err = errReleasedMidFrame // bytes nobody asked for
			}
			br.Release()
			return err
		}
		size := int32(binary.BigEndian.Uint32(hdr[:4]))
		if size < 4 || int(size) > l.opts.MaxFrameBytes {
			return fmt.Errorf("upstream response size %d outside 4..%d (limits.max_frame_bytes)", size, l.opts.MaxFrameBytes)
		}
		corr := int32(binary.BigEndian.Uint32(hdr[4:]))
		owner, client := l.peek(corr)
		if int(size)-4 >= StreamMin {
			if client {
				streamed, err := l.h.LaneStream(owner, hdr[:], br, int(size)-4)
				if err != nil {
					return err
				}
				if streamed {
					l.opts.BytesIn.Add(float64(4 + size))
					if _, _, err := l.match(corr); err != nil {
						return err
					}
					continue
				}
			}
		}
		var frame *bufpool.Buf
		if client {
			if frame = l.h.LaneBuffer(owner, 4+int(size)); frame == nil {
				return net.ErrClosed
			}
		} else {
			frame = l.opts.Pool.Get(4 + int(size))
		}
		copy(frame.B, hdr[:])
		if err := l.readFull(br, frame.B[8:]); err != nil {
			l.opts.Pool.Put(frame)
			return midFrame(err)
		}
		l.opts.BytesIn.Add(float64(len(frame.B)))
		p, deliver, err := l.match(corr)
		if err != nil {
			l.opts.Pool.Put(frame)
			return err
		}
		if !deliver {
			l.opts.Pool.Put(frame)
			continue
		}
		if p.auth != nil {
			p.auth.ch <- frame // the lane's own SASL exchange (reauth.go)
			continue
		}
		l.h.LaneResponse(p.owner, frame)
	}
}

// StreamMin is the smallest answer body a lane offers to stream: below it,
// buffering costs less than it delays.
const StreamMin = 64 << 10

// peek returns the owner of the answer corr when it is the next one due and
// a client's; the entry stays pending until match pops it, so a lane that
// fails while the answer streams still counts it as in flight.
func (l *Lane[O]) peek(corr int32) (owner O, client bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.head == len(l.pending) || l.pending[l.head].corr != corr || l.pending[l.head].auth != nil {
		return owner, false
	}
	l.answering = true
	return l.pending[l.head].owner, true
}

// readFull is io.ReadFull that ends the lane when its idle deadline fires
// with nothing in flight, and rides over it when a request was queued
// after it fired.
func (l *Lane[O]) readFull(r io.Reader, b []byte) error {
	for n := 0; n < len(b); {
		m, err := r.Read(b[n:])
		n += m
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			l.mu.Lock()
			if l.why == errReleased {
				l.mu.Unlock()
				if n > 0 {
					return errReleasedMidFrame
				}
				return errReleased
			}
			if !l.acks0SettledLocked() {
				l.mu.Unlock()
				continue // an acks=0 produce restarted the idle timer
			}
			idle := l.idleLocked()
			if idle {
				// Ended under the same lock Send takes: no request can
				// slip onto a lane that is going away.
				l.endLocked(errIdleTimeout)
			}
			l.mu.Unlock()
			if !idle {
				continue
			}
			return errIdleTimeout
		}
		if err == io.EOF && n > 0 {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}
