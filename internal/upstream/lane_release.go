package upstream

import (
	"errors"
	"net"
	"time"

	"github.com/kproxy/kproxy/internal/metrics"
)

// Giving a lane's connection back to its pool (pool.go) when the session
// that owned it ends. The connection may go only if nothing can be in
// flight on it, in either direction:
//
//   - no answer pending, no acks=0 produce written since the last answer
//     (the broker may still be processing it, and closes the connection to
//     report its failure), no re-authentication parked or under way;
//   - nothing queued for the writer and no write under way, so no request
//     is half written;
//   - the reader stopped between two answers, with no byte of a next frame
//     read (a broker with nothing to answer sends nothing; a byte means the
//     connection is not what the lane believes).
//
// Release checks the first two under the lane's lock and marks the lane
// closed in the same critical section, so no request can slip in after the
// check. It then interrupts the reader with a read deadline in the past; the
// reader checks the third and either hands the connection to the pool,
// with its deadlines cleared, or closes it. Anything else closes it.

var (
	// errReleased: the reader stopped between frames because the lane was
	// released.
	errReleased = errors.New("lane released to the pool")
	// errReleasedMidFrame: the reader was interrupted with part of a frame
	// read; the connection cannot be reused.
	errReleasedMidFrame = errors.New("lane released in the middle of a frame")
)

// aLongTimeAgo is a read deadline that interrupts a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// Release ends the lane. Its connection goes back to the lane's pool when
// nothing can be in flight on it; otherwise, or without a pool, Release is
// Close. The handler's LaneDone follows either way, with a nil error when
// the connection was given back.
func (l *Lane[O]) Release() {
	l.mu.Lock()
	if l.home == nil || l.closed {
		l.mu.Unlock()
		l.Close()
		return
	}
	if !l.idleLocked() || l.writing || len(l.queue) > 0 || (l.reauth != nil && len(l.reauth.held) > 0) {
		l.mu.Unlock()
		l.home.discard(metrics.PoolDiscardBusy)
		l.Close()
		return
	}
	l.closed, l.released = true, true
	l.err = errReleased // fail, from any goroutine, now leaves conn alone
	close(l.done)       // the writer and the re-authentication loop stop
	_ = l.conn.SetReadDeadline(aLongTimeAgo)
	l.mu.Unlock()
}

// endRelease runs on the reader once readLoop has returned err: for a
// released lane it gives the connection back (a clean stop) or closes it,
// reports to the handler, and returns true; for any other lane false.
func (l *Lane[O]) endRelease(err error) bool {
	l.mu.Lock()
	if !l.released {
		l.mu.Unlock()
		return false
	}
	conn, idleSince := l.pooledConnLocked()
	l.mu.Unlock()
	if err == errReleased {
		if derr := l.conn.SetDeadline(time.Time{}); derr == nil {
			l.home.put(l.addr, conn, idleSince)
			l.h.LaneDone(l, nil)
			return true
		}
	}
	l.home.discard(metrics.PoolDiscardUnclean)
	_ = l.conn.Close()
	l.h.LaneDone(l, nil) // the session had ended; nothing was in flight
	return true
}

// pooledConnLocked is the connection as the pool keeps it: with the SASL
// session it carries, as the latest re-authentication left it, so that the
// lane that takes it re-authenticates on time.
func (l *Lane[O]) pooledConnLocked() (net.Conn, time.Time) {
	r := l.reauth
	if r == nil || r.lifetime <= 0 {
		return l.conn, l.idleSince
	}
	return &authConn{Conn: l.conn, dialer: r.conn.dialer, addr: r.conn.addr, lifetime: r.lifetime, at: r.since}, l.idleSince
}

// midFrame marks a release that interrupted the reading of a frame body:
// the frame's header was consumed, so the connection cannot be reused.
func midFrame(err error) error {
	if err == errReleased {
		return errReleasedMidFrame
	}
	return err
}
