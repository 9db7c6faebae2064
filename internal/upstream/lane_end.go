package upstream

import (
	"errors"
	"fmt"
	"net"

	"github.com/kproxy/kproxy/internal/bufpool"
)

// Close ends the lane; pending requests are abandoned.
func (l *Lane[O]) Close() { l.end(net.ErrClosed) }

// A lane ends one way, through end (as franz-go's broker connection dies
// through die), whatever ends it; the first reason given stands:
//
//   - net.ErrClosed: Close, or Release of a lane that may have something in
//     flight (or has no pool), or a failed re-authentication that parked
//     nothing; what was lost, if anything, is the reader's to say;
//   - errReleased: Release of a lane with nothing in flight; its connection
//     is left open for the reader to hand to the pool (lane_release.go);
//   - errIdleTimeout: the reader's idle timer, on a lane with nothing in
//     flight (readFull);
//   - errRetired: a lane with nothing in flight whose connection a reload
//     made stale (retireStaleLocked);
//   - the writer's error, or a failed re-authentication with requests
//     parked: a failure the session must see, whatever the reader saw;
//   - the reader's own error: the broker closed, or answered out of turn.
//
// end stops the writer and the re-authentication loop (done) and the
// reader: by closing the connection, or, released, with a read deadline in
// the past. The reader then finishes the lane (finish): it decides what
// was lost and reports LaneDone, the one place that does.
func (l *Lane[O]) end(why error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.endLocked(why)
}

// endLocked is end under the lane's lock, for a route that decides under
// it: closed in the same critical section as the check, no request can
// slip in. It reports whether this call ended the lane.
func (l *Lane[O]) endLocked(why error) bool {
	if l.closed {
		return false
	}
	l.closed, l.why = true, why
	close(l.done)
	if why == errReleased {
		_ = l.conn.SetReadDeadline(aLongTimeAgo)
	} else {
		_ = l.conn.Close()
	}
	return true
}

// finish runs on the reader once readLoop has returned readErr: it ends
// the lane with readErr unless another route ended it first, aborts a
// re-authentication under way, puts back the frames it will never write
// (their budget charge with them), gives a released lane's connection back
// (lane_release.go), and reports to the handler, once.
func (l *Lane[O]) finish(readErr error) {
	l.mu.Lock()
	own := l.endLocked(readErr)
	if l.reauth != nil {
		l.reauth.abortLocked(l, readErr, own)
	}
	err := l.lostLocked(readErr, own)
	unsent := l.unsentLocked()
	released := l.why == errReleased
	l.mu.Unlock()
	for _, frame := range unsent {
		l.opts.Pool.Put(frame) // pays back the memory budget charged for it
	}
	if released {
		l.handBack(readErr)
	}
	l.gauge.Dec()
	l.h.LaneDone(l, err)
}

// unsentLocked takes the frames the lane will never write: those queued
// for the writer and those parked by a re-authentication. Nothing joins
// either once the lane has ended (Send, SendTail and exchange check
// closed; the re-authentication's release only moves parked frames to the
// queue), and a frame the writer took already is the writer's to put back.
func (l *Lane[O]) unsentLocked() []*bufpool.Buf {
	unsent := l.queue
	l.queue = nil
	if l.reauth != nil {
		for _, h := range l.reauth.held {
			unsent = append(unsent, h.frame)
		}
		l.reauth.held = nil
	}
	return unsent
}

// lostLocked is what LaneDone reports: nil when nothing was lost, else
// why the requests in flight will not be answered. own: the reader's
// readErr ended the lane, not another route.
func (l *Lane[O]) lostLocked(readErr error, own bool) error {
	switch {
	case l.why == errReleased, l.why == errIdleTimeout, l.why == errRetired:
		return nil // ended only with nothing in flight
	case !own && !errors.Is(l.why, net.ErrClosed):
		return l.why // the writer, or a re-authentication, failed first
	case l.idleLocked() && len(l.queue) == 0:
		return nil // an idle connection closing loses nothing
	case l.acks0.unconfirmed() > 0 && l.head == len(l.pending):
		return fmt.Errorf("%w: %w", ErrClosedAfterAcks0, readErr)
	}
	return readErr
}
