package listener

import (
	"errors"
	"io"
	"net"
	"os"

	"github.com/kproxy/kproxy/internal/bufpool"
	"github.com/kproxy/kproxy/internal/peek"
	"github.com/kproxy/kproxy/internal/router"
	"github.com/kproxy/kproxy/internal/upstream"
)

// A large Produce frame from a plain TCP client is mostly records that
// kproxy forwards untouched. The reader reads its first bytes (everything
// routing reads: the header, transactional id, acks and timeout) and leaves
// the rest, the tail, in the client's socket. When the lane's writer is
// free, the lane writes the first bytes and the tail moves from the client
// socket to the broker socket with splice(2) (Go's TCPConn.ReadFrom), never
// through user space, as a blind relay's bytes do; otherwise the tail is read
// into the frame as any frame is. The session's budget holds the first
// bytes only until they are written; the spliced bytes pass through a
// kernel pipe of Go's (up to 1 MiB), as the relay's do.

var _ upstream.Tail = (*session)(nil)

// readerSize is the session's read buffer (read).
const readerSize = 8 << 10

// spliceHead is what the reader reads of a large frame before it decides;
// the read buffer may hold up to readerSize more bytes, which the head takes
// too, so that it fits the first frame buffer and no byte of the tail is
// left buffered.
const spliceHead = frameStart - readerSize

// frameTail is the rest of the frame just read, when it is still in the
// client's socket (lr.N > 0).
type frameTail struct {
	r  io.Reader        // the session's reader, for a tail read after all
	lr io.LimitedReader // R is the client's *net.TCPConn
	// owed: route owes the frame's answer already while its bytes are
	// still arriving; the client is not waiting on it (timedOut), and a
	// trickle is no more activity than it is for a frame read whole.
	owed bool
}

// readHead reads the first spliceHead bytes of a frame of total bytes and,
// for a Produce request whose routing fields they hold, leaves the rest as
// the session's tail (tail true): a head that shows a length past the
// frame's end too, for route to refuse without reading the rest.
// Otherwise got is what frame holds; on an error the frame is gone.
func (s *session) readHead(r io.Reader, frame *bufpool.Buf, total int) (got int, tail bool, err error) {
	if err := s.readFull(r, frame.B[4:spliceHead]); err != nil {
		s.srv.pool.Put(frame)
		return 0, false, err
	}
	br, ok := r.(*bufpool.Reader)
	// A look at the head: route parses the frame for itself.
	q, _ := s.pol.protocol.ParseRequestHead(frame.B[4:spliceHead], total-4)
	if !ok || q.Key != router.KeyProduce || errors.Is(s.pol.protocol.CheckRequest(&q, false), router.ErrTruncated) {
		return spliceHead, false, nil // decided on the whole frame, as ever
	}
	head := spliceHead + br.Buffered()
	if err := s.readFull(r, frame.B[spliceHead:head]); err != nil {
		s.srv.pool.Put(frame)
		return 0, false, err
	}
	frame.B = frame.B[:head]
	s.tail.r = r
	s.tail.lr = io.LimitedReader{R: s.conn, N: int64(total - head)}
	return head, true, nil
}

// TailLen implements upstream.Tail.
func (s *session) TailLen() int64 { return s.tail.lr.N }

// WriteTail implements upstream.Tail: it splices the tail into conn,
// riding over read deadlines as readFull does. Any error fails the lane,
// whose reader reports it as the broker's failure; when the client failed
// (it closed or reset mid-frame, or timed out), the session closes here
// first, with the client's reason, and that first reason stands.
func (s *session) WriteTail(conn *net.TCPConn) (int64, error) {
	var n int64
	for s.tail.lr.N > 0 {
		m, err := conn.ReadFrom(&s.tail.lr)
		n += m
		client := true
		switch {
		case err == nil && s.tail.lr.N > 0:
			err = io.ErrUnexpectedEOF // the client closed mid-frame
		case errors.Is(err, os.ErrDeadlineExceeded):
			if err = s.timedOut(); err == nil {
				continue
			}
		case err != nil:
			// The splice names neither of its sockets.
			state, _ := peek.At(s.conn)
			client = state == peek.Closed
		}
		if err != nil {
			if client {
				err = s.tailFailed(err)
			}
			return n, err
		}
	}
	return n, nil
}

// readTail reads the tail into frame, which holds the frame's head: the
// lane could not take it as a tail.
func (s *session) readTail(frame *bufpool.Buf) (*bufpool.Buf, error) {
	got := len(frame.B)
	total := got + int(s.tail.lr.N)
	s.tail.lr.N = 0
	frame.B = frame.B[:min(total, cap(frame.B))]
	frame, err := s.readRest(s.tail.r, frame, got, total)
	if err != nil {
		return nil, s.tailFailed(err)
	}
	return frame, nil
}

// skipTail reads and drops the tail of a frame that route did not send.
func (s *session) skipTail() error {
	for s.tail.lr.N > 0 {
		b, err := s.frameBuffer(int(min(s.tail.lr.N, frameStart)), nil)
		if err != nil {
			return err
		}
		err = s.readFull(s.tail.r, b.B)
		s.tail.lr.N -= int64(len(b.B))
		s.srv.pool.Put(b)
		if err != nil {
			return err
		}
	}
	return nil
}

// tailFailed ends the session for a tail the client did not send whole,
// with the reason a failed frame read has (the caller, route, would call
// any send error a failed dial), and returns err.
func (s *session) tailFailed(err error) error {
	s.close(s.readError(err, true))
	return err
}

// spliceFailed ends the session for a lane that failed with a spliced frame
// half written: the broker's failure, unless the client's fault closed the
// session already (WriteTail).
func (s *session) spliceFailed(err error) error {
	s.close(reasonUpstreamFailed, err)
	return err
}
