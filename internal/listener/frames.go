package listener

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kproxy/kproxy/internal/budget"
	"github.com/kproxy/kproxy/internal/bufpool"
)

// Reading a client: a frame's buffer grows as its bytes arrive, out of the
// session's budget, and the read deadline enforces the client timeouts.

// frameStart is the most a frame buffer holds before its bytes arrive: a
// declared size is never allocated up front, so a client that announces
// 100 MB and sends 8 bytes costs this much, not 100 MB.
const frameStart = 64 << 10

// Session close reasons of the client timeouts
// (kproxy_session_closes_total{reason}).
const (
	reasonClientIdleTimeout  = "client_idle_timeout"
	reasonClientWriteTimeout = "client_write_timeout"
	reasonHandshakeTimeout   = "handshake_timeout"
)

// errSessionClosed: the session closed while the reader waited.
var errSessionClosed = errors.New("session closed")

// timeoutError ends a session for a client timeout.
type timeoutError struct {
	reason string
	msg    string
}

func (e *timeoutError) Error() string { return e.msg }

// readFrame reads the body of a frame of n bytes whose size prefix is
// prefix, growing its buffer as the bytes come and taking each growth from
// the budget first. A large Produce frame from a plain TCP client may come
// back with only its first bytes read, the rest left in the socket as the
// session's tail (tail.go).
func (s *session) readFrame(r io.Reader, prefix [4]byte, n int) (*bufpool.Buf, error) {
	total := 4 + n
	frame, err := s.frameBuffer(min(total, frameStart), nil)
	if err != nil {
		return nil, err
	}
	copy(frame.B, prefix[:])
	got := 4
	if total > frameStart && s.splices {
		var tail bool
		switch got, tail, err = s.readHead(r, frame, total); {
		case err != nil:
			return nil, err
		case tail:
			return frame, nil
		}
	}
	return s.readRest(r, frame, got, total)
}

// readRest reads a frame of total bytes whose first got bytes frame holds,
// growing its buffer as the bytes come.
func (s *session) readRest(r io.Reader, frame *bufpool.Buf, got, total int) (*bufpool.Buf, error) {
	for {
		if err := s.readFull(r, frame.B[got:]); err != nil {
			s.srv.pool.Put(frame)
			return nil, err
		}
		got = len(frame.B)
		if got == total {
			return frame, nil
		}
		var err error
		if frame, err = s.frameBuffer(min(total, 4*got), frame); err != nil {
			return nil, err
		}
	}
}

// frameBuffer returns a charged buffer of size bytes holding what old held;
// old goes back to the pool.
func (s *session) frameBuffer(size int, old *bufpool.Buf) (*bufpool.Buf, error) {
	c := bufpool.Cap(size)
	own := 0
	if old != nil {
		own = old.Charged()
	}
	if !s.acct.Take(c, own, budget.Request, s.closedCh) {
		s.srv.pool.Put(old)
		return nil, errSessionClosed
	}
	b := s.srv.pool.Get(size)
	b.Charge(s.acct, c)
	if old != nil {
		copy(b.B, old.B)
		s.srv.pool.Put(old)
	}
	return b, nil
}

// readFull is io.ReadFull that rides over a read deadline that fired while
// the client was not idle, and turns one that fired while it was into the
// session's end.
func (s *session) readFull(r io.Reader, b []byte) error {
	for n := 0; n < len(b); {
		m, err := r.Read(b[n:])
		n += m
		switch {
		case err == nil:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			if err := s.timedOut(); err != nil {
				return err
			}
			continue
		case err == io.EOF && n > 0:
			return io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

// deadline is when the client's time runs out, as far as the reader knows:
// the handshake timeout until terminate-mode SASL is done, then the idle
// timeout after the last request read. Zero: never.
func (s *session) deadline() time.Time {
	if s.unauthenticated() {
		if t := s.srv.cfg.Listen.HandshakeTimeout; t > 0 {
			return s.start.Add(t)
		}
	}
	if t := s.idleTimeout; t > 0 {
		return s.lastRequest.Add(t)
	}
	return time.Time{}
}

// armReadDeadline moves the read deadline when it has fallen well behind:
// at most a few times per idle timeout, so the hot path sets no timer. A
// deadline that fires early is checked (timedOut) and moved on.
func (s *session) armReadDeadline() {
	want := s.deadline()
	if want.IsZero() || !s.readDeadline.IsZero() && want.Sub(s.readDeadline) < s.idleTimeout/8 && !want.Before(s.readDeadline) {
		return
	}
	s.setReadDeadline(want)
}

// setReadDeadline sets the read deadline unless a drain set its own.
func (s *session) setReadDeadline(t time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.readDeadline = t
	_ = s.conn.SetReadDeadline(t)
	return true
}

// timedOut decides what a read deadline that fired means: the session's
// end for a client that stayed idle (or unauthenticated) too long, else a
// new deadline. A frame trickling in is no activity: only a request read
// in full, or an answer written, is.
func (s *session) timedOut() error {
	now := time.Now()
	if s.unauthenticated() && s.srv.cfg.Listen.HandshakeTimeout > 0 &&
		!now.Before(s.start.Add(s.srv.cfg.Listen.HandshakeTimeout)) {
		return &timeoutError{reasonHandshakeTimeout, fmt.Sprintf("client did not complete SASL authentication within listen.handshake_timeout %v", s.srv.cfg.Listen.HandshakeTimeout)}
	}
	next := s.deadline()
	if idle := s.idleTimeout; idle > 0 && !now.Before(next) {
		last := s.lastRequest
		if w := time.Unix(0, s.answers.lastWrite.Load()); w.After(last) {
			last = w
		}
		owed := s.answers.owed()
		if s.tail.owed {
			owed-- // the frame still arriving (tail.go)
		}
		switch {
		case owed > 0:
			next = now.Add(idle) // waiting on its answers is not idle
		case now.Sub(last) >= idle:
			return &timeoutError{reasonClientIdleTimeout, fmt.Sprintf("client owed nothing and sent no complete request for limits.client_idle_timeout %v", idle)}
		default:
			next = last.Add(idle)
		}
	}
	if !s.setReadDeadline(next) {
		return os.ErrDeadlineExceeded // draining
	}
	return nil
}
