package upstream

import (
	"net"
	"time"

	"github.com/kproxy/kproxy/internal/bufpool"
)

// Tail is the rest of a request frame that is still in the client's socket
// when the frame is sent: the lane writes the frame's first bytes, then
// lets the tail copy itself into the connection.
type Tail interface {
	// WriteTail copies the rest of the frame, exactly, into conn, and
	// reports the bytes it wrote. Its error ends the lane: the request
	// may be half written.
	WriteTail(conn *net.TCPConn) (int64, error)
	// TailLen is the number of bytes WriteTail copies.
	TailLen() int64
}

// SendTail sends a request frame whose first bytes are frame and whose
// rest tail copies, from the caller's goroutine, holding the lane's writer
// for the while: on a plain TCP connection (so that a TCP client's bytes
// move socket to socket with splice(2), never through user space) with
// nothing queued, no write under way and no re-authentication, so that no
// other frame can come between. A broker stops reading a connection while
// it works on one of its requests, so the caller may wait on the broker
// for as long as that takes; unless mayWait, the lane takes the frame only
// where it cannot: with nothing in flight (the broker is reading), or
// when the kernel takes the whole frame now (sendRoom). Otherwise it does
// nothing and reports false; the
// caller reads the tail and calls Send. ErrLaneClosed as in Send. Once it
// took the frame (true), a non-nil err is the write's or the tail's, and
// the lane has failed.
func (l *Lane[O]) SendTail(frame *bufpool.Buf, tail Tail, mayWait bool, corr int32, expectResponse bool, owner O) (bool, error) {
	if _, ok := l.conn.(*net.TCPConn); !ok {
		return false, nil
	}
	l.mu.Lock()
	if l.closed || l.retireStaleLocked() {
		l.mu.Unlock()
		return false, ErrLaneClosed
	}
	if l.reauth != nil || l.writing || len(l.queue) > 0 || !mayWait && !l.idleLocked() && !l.room.takes(int64(len(frame.B))+tail.TailLen()) {
		l.mu.Unlock()
		return false, nil
	}
	l.enlistLocked(corr, expectResponse, owner)
	l.writing = true
	l.mu.Unlock()

	if err := l.writeDirect(frame, tail); err != nil {
		return true, err
	}
	// The broker could start on the request only once its last byte was
	// written: a client that trickles its frame is not the broker holding
	// it (Head, the stall timer). While the splice runs the request counts
	// from when it was enlisted, so that a broker that stops reading it is
	// still caught.
	l.mu.Lock()
	if expectResponse && l.head == len(l.pending)-1 && l.pending[l.head].corr == corr && !l.answering {
		l.headAt = time.Now()
	}
	l.mu.Unlock()
	return true, nil
}
