package listener

import (
	"sync"
	"time"

	"github.com/kproxy/kproxy/internal/bufpool"
	"github.com/kproxy/kproxy/internal/router"
	"github.com/kproxy/kproxy/internal/upstream"
)

var slotPool = sync.Pool{New: func() any { return new(slot) }}

// push reserves the client's next answer; frame is set for answers the
// proxy makes itself.
func (s *session) push(h router.RequestHeader, g router.Group, frame *bufpool.Buf, wait time.Duration) *slot {
	sl := slotPool.Get().(*slot)
	now := time.Now()
	*sl = slot{key: h.Key, version: h.Version, group: g, sent: now, doneAt: now, frame: frame, done: frame != nil, snap: sl.snap, wait: wait}
	if frame == nil {
		// In flight until complete, or until close finds it not done:
		// exactly one of the two decrements, under s.mu.
		s.srv.instr.inflight[g].Inc()
	}
	s.mu.Lock()
	s.slots = append(s.slots, sl)
	if frame == nil {
		s.orderingPushed(sl)
	}
	s.mu.Unlock()
	return sl
}

// complete records an upstream answer and delivers what may go.
func (s *session) complete(sl *slot, frame *bufpool.Buf) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.srv.pool.Put(frame)
		return
	}
	sl.frame, sl.done, sl.doneAt = frame, true, time.Now()
	s.orderingAnswered(sl, sl.doneAt)
	g := sl.group // the writer may recycle sl once s.mu is released
	s.mu.Unlock()
	s.srv.instr.inflight[g].Dec()
	s.deliver()
}

// deliver writes every answer that may go now: strict ordering the done
// answers at the head of the queue, so an answer waits for every answer owed
// before it; relaxed ordering every done answer. Whoever makes an answer
// ready calls it. The first caller becomes the writer and writes until
// nothing more is ready, so an answer usually leaves from the goroutine that
// completed it, with no hand-off; one writer at a time keeps the order, and
// everything ready goes out in one writev.
func (s *session) deliver() {
	s.mu.Lock()
	if s.writing || s.closed {
		s.mu.Unlock() // the writer at work picks up what is ready now
		return
	}
	s.writing = true
	for {
		s.batch = s.batch[:0]
		if s.ord.relaxed.Load() {
			s.takeCompleted()
		}
		for s.head < len(s.slots) && s.slots[s.head].done {
			s.batch = append(s.batch, s.slots[s.head])
			s.slots[s.head] = nil
			s.head++
		}
		if s.head == len(s.slots) {
			s.head, s.slots = 0, s.slots[:0]
		}
		if len(s.batch) == 0 {
			s.writing = false
			finished := s.readerDone && s.draining && len(s.slots) == 0
			s.mu.Unlock()
			if finished {
				s.close(reasonShutdown, nil)
			}
			return
		}
		s.mu.Unlock()
		s.observeHolds()
		if err := s.flush(); err != nil {
			s.close(reasonClientWriteFailed, err)
			return
		}
		s.mu.Lock()
	}
}

func (s *session) flush() error {
	s.iov = s.iov[:0]
	for _, sl := range s.batch {
		s.iov = append(s.iov, sl.frame.B)
	}
	s.out = s.iov
	n, err := s.out.WriteTo(s.conn)
	s.srv.instr.clientOut.Add(float64(n))
	s.countOut(int(n))
	for i, sl := range s.batch {
		s.srv.pool.Put(sl.frame)
		*sl = slot{snap: sl.snap[:0]}
		slotPool.Put(sl)
		s.batch[i] = nil
		<-s.sem
	}
	return err
}

// close is the session's one teardown path: idempotent, the first reason
// wins, the client connection and every lane close together.
func (s *session) close(reason string, err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	lanes := append([]*upstream.Lane(nil), s.lanes...)
	clear(s.lanes)
	owed := s.slots[s.head:]
	s.slots, s.head = nil, 0
	s.mu.Unlock()

	close(s.closedCh)
	if resetOnClose(reason) {
		abort(s.conn) // reset.go
	}
	_ = s.conn.Close()
	for _, l := range lanes {
		if l != nil {
			l.Release() // back to the upstream pool when nothing is in flight on it
		}
	}
	for _, sl := range owed {
		if sl.done {
			s.srv.pool.Put(sl.frame)
		} else {
			s.srv.instr.inflight[sl.group].Dec()
		}
	}
	s.srv.instr.sessionClosed(reason)
	s.logClosed(reason, err, len(owed))
}
