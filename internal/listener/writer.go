package listener

import (
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/kproxy/kproxy/internal/bufpool"
	"github.com/kproxy/kproxy/internal/router"
	"github.com/kproxy/kproxy/internal/upstream"
)

var slotPool = sync.Pool{New: func() any { return new(slot) }}

// push reserves the client's next answer; frame is set for answers the
// proxy makes itself.
func (s *session) push(h router.RequestHeader, g router.Group, frame *bufpool.Buf, wait time.Duration) *slot {
	sl := slotPool.Get().(*slot)
	*sl = slot{key: h.Key, version: h.Version, group: g, sent: time.Now(), frame: frame, done: frame != nil, wait: wait}
	s.srv.instr.inflight[g].Inc()
	s.mu.Lock()
	s.slots = append(s.slots, sl)
	s.mu.Unlock()
	return sl
}

// complete records an upstream answer and wakes the writer.
func (s *session) complete(sl *slot, frame *bufpool.Buf) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.srv.pool.Put(frame)
		return
	}
	sl.frame, sl.done = frame, true
	s.mu.Unlock()
	s.signal()
}

// write is the session's writer: strict ordering writes answers in request
// order, so an answer waits for every answer owed before it. Everything
// ready goes out in one writev.
func (s *session) write() {
	for {
		select {
		case <-s.wake:
		case <-s.closedCh:
			return
		}
		s.mu.Lock()
		s.batch = s.batch[:0]
		for s.head < len(s.slots) && s.slots[s.head].done {
			s.batch = append(s.batch, s.slots[s.head])
			s.slots[s.head] = nil
			s.head++
		}
		if s.head == len(s.slots) {
			s.head, s.slots = 0, s.slots[:0]
		}
		finished := s.readerDone && s.draining && s.head == len(s.slots)
		s.mu.Unlock()

		if len(s.batch) > 0 {
			if err := s.flush(); err != nil {
				s.close(reasonClientWriteFailed, err)
				return
			}
		}
		if finished {
			s.close(reasonShutdown, nil)
			return
		}
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
	for i, sl := range s.batch {
		s.srv.pool.Put(sl.frame)
		*sl = slot{}
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
	s.closeReason = reason
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
			l.Close()
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
	fields := []zap.Field{zap.String("reason", reason), zap.Duration("duration", time.Since(s.start))}
	if len(owed) > 0 {
		fields = append(fields, zap.Int("unanswered", len(owed)))
	}
	switch {
	case err != nil && reason != reasonClientClosed:
		s.log.Warn("session closed", append(fields, zap.Error(err))...)
	default:
		s.log.Info("session closed", fields...)
	}
}
