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
//   - no acks=0 produce ever sent on it (a server that answers those, as
//     Kafka does not, may answer at any time: lane_acks0.go);
//   - no answer pending, no re-authentication parked or under way;
//   - nothing queued for the writer and no write under way, so no request
//     is half written;
//   - the reader stopped between two answers, with no byte of a next frame
//     read (a broker with nothing to answer sends nothing; a byte means the
//     connection is not what the lane believes).
//
// Release checks the first three under the lane's lock and ends the lane
// (end, errReleased) in the same critical section, so no request can slip
// in after the check. That interrupts the reader with a read deadline in
// the past instead of closing the connection; the reader, finishing the
// lane, checks the last and either hands the connection to the pool, with
// its deadlines cleared, or closes it (handBack). Anything else closes it.
//
// A connection dialed with TLS or SASL settings that a reload has since
// replaced (dialedConn.stale) never goes back: the pool refuses it. Nor
// does it carry another request that could go elsewhere: its lane ends
// (retireStaleLocked) as soon as nothing is in flight on it, when its
// last answer arrives or when a request finds it idle, and the session
// dials a new lane for that request.

var (
	// errReleased: the reader stopped between frames because the lane was
	// released.
	errReleased = errors.New("lane released to the pool")
	// errReleasedMidFrame: the reader was interrupted with part of a frame
	// read; the connection cannot be reused.
	errReleasedMidFrame = errors.New("lane released in the middle of a frame")
	// errRetired: the lane's connection was dialed with TLS or SASL
	// settings a reload replaced, and nothing was in flight on it.
	errRetired = errors.New("upstream security settings reloaded")
)

// aLongTimeAgo is a read deadline that interrupts a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// quietLocked reports whether nothing can be in flight on the connection,
// in either direction: idle, nothing queued or being written, nothing
// parked by a re-authentication.
func (l *Lane[O]) quietLocked() bool {
	return l.idleLocked() && !l.writing && len(l.queue) == 0 && (l.reauth == nil || len(l.reauth.held) == 0)
}

// Release ends the lane. Its connection goes back to the lane's pool when
// nothing can be in flight on it; otherwise, or without a pool, Release is
// Close. The handler's LaneDone follows either way, with a nil error when
// the connection was given back.
func (l *Lane[O]) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.home == nil || l.closed:
		l.endLocked(net.ErrClosed)
	case l.acks0.sent > 0:
		l.home.discard(metrics.PoolDiscardAcks0)
		l.endLocked(net.ErrClosed)
	case !l.quietLocked():
		l.home.discard(metrics.PoolDiscardBusy)
		l.endLocked(net.ErrClosed)
	default:
		l.endLocked(errReleased) // the writer and the re-authentication loop stop; the reader hands conn on
	}
}

// handBack runs on the reader of a released lane once readLoop has
// returned readErr: the connection goes to the pool after a clean stop
// between two frames, else it is closed.
func (l *Lane[O]) handBack(readErr error) {
	if readErr == errReleased {
		l.mu.Lock()
		conn, idleSince := l.pooledConnLocked()
		l.mu.Unlock()
		if err := l.conn.SetDeadline(time.Time{}); err == nil {
			l.home.put(l.addr, conn, idleSince)
			return
		}
	}
	l.home.discard(metrics.PoolDiscardUnclean)
	_ = l.conn.Close()
}

// pooledConnLocked is the connection as the pool keeps it: with how it
// was dialed (settings' generation, time) and the SASL session it carries,
// as the latest re-authentication left it, so that the lane that takes it
// re-authenticates on time.
func (l *Lane[O]) pooledConnLocked() (*dialedConn, time.Time) {
	dc := *l.origin
	if r := l.reauth; r != nil {
		dc.lifetime, dc.at = r.lifetime, r.since
	}
	return &dc, l.idleSince
}

// midFrame marks a release that interrupted the reading of a frame body:
// the frame's header was consumed, so the connection cannot be reused.
func midFrame(err error) error {
	if err == errReleased {
		return errReleasedMidFrame
	}
	return err
}

// retireStaleLocked ends the lane (errRetired, nothing lost) when its
// connection is stale and nothing is in flight on it; it reports whether
// it did. A busy lane keeps its connection, and its order, until it
// drains (match calls this then).
func (l *Lane[O]) retireStaleLocked() bool {
	if !l.quietLocked() || !l.origin.stale() {
		return false
	}
	return l.endLocked(errRetired)
}
