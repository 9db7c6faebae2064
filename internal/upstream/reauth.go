package upstream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/internal/bufpool"
)

// KIP-368 re-authentication of a lane. When the broker gave the SASL
// session a lifetime, the lane re-authenticates on its own connection a
// little before it runs out, the way the Java client and kgo do:
//
//  1. hold: Send keeps accepting client requests but parks them, in order,
//     instead of queueing them for the writer;
//  2. drain: wait until every request already written has been answered,
//     so that no client answer and no SASL answer share the wire;
//  3. exchange: SaslHandshake and SaslAuthenticate go through the lane's
//     own FIFO, their pending entries marked with a reply channel
//     (authReply) instead of an owner; the reader hands their answers back
//     here instead of to the session;
//  4. release: the parked requests join the queue in the order they came.
//
// No client request fails or changes order; those sent during the
// exchange wait one round trip more (plus the drain of a long poll that
// was in flight). The timing (reauthSchedule, sasl.go) keeps to Kafka's
// rules: the hold begins before the session expires, and two handshakes
// are more than a second apart; with lifetimes under 2 s that parks
// requests until the handshake may go. A failed re-authentication is
// logged by the dialer and ends the lane: with parked requests that is a
// failure the session sees, on an idle lane it is not.

// reauthState is guarded by the lane's mutex.
type reauthState[O any] struct {
	conn    *dialedConn
	holding bool
	held    []heldRequest[O]
	drained chan struct{} // closed when nothing is pending; nil unless waited for
	corr    int32
	// The SASL session now: its lifetime and when its authentication
	// began. A connection given back to the pool carries them.
	lifetime time.Duration
	since    time.Time
}

type heldRequest[O any] struct {
	frame  *bufpool.Buf
	corr   int32
	expect bool
	owner  O
}

// authReply is where the answer to one of the lane's own SASL requests
// goes (pending.auth). A nil frame on ch means the connection ended first;
// err says how.
type authReply struct {
	ch  chan *bufpool.Buf
	err error
}

func (r *reauthState[O]) hold(frame *bufpool.Buf, corr int32, expect bool, owner O) {
	r.held = append(r.held, heldRequest[O]{frame: frame, corr: corr, expect: expect, owner: owner})
}

func (r *reauthState[O]) drainedLocked() {
	if r.drained != nil {
		close(r.drained)
		r.drained = nil
	}
}

// abortLocked runs when the lane's reader stops with err; own: that error
// ended the lane. A connection that ends during the exchange is the
// broker's answer (some brokers reject credentials by closing): the
// exchange learns it, and with no client request parked the lane counts as
// idle, so the session goes on.
func (r *reauthState[O]) abortLocked(l *Lane[O], err error, own bool) {
	if l.head == len(l.pending) {
		return
	}
	reply := l.pending[l.head].auth
	if reply == nil {
		return
	}
	reply.err = err
	if !own {
		reply.err = ErrLaneClosed // ended by the proxy, not by the broker
	}
	reply.ch <- nil
	l.head, l.pending = 0, l.pending[:0]
	if len(r.held) == 0 {
		r.holding = false
	}
}

func (l *Lane[O]) startReauth(ac *dialedConn) {
	l.mu.Lock()
	l.reauth = &reauthState[O]{conn: ac, corr: 1 << 30, lifetime: ac.lifetime, since: ac.at}
	l.mu.Unlock()
	go l.reauthLoop(ac.lifetime, ac.at)
}

// reauthLoop re-authenticates on reauthSchedule; since is when the
// previous authentication began.
func (l *Lane[O]) reauthLoop(lifetime time.Duration, since time.Time) {
	for lifetime > 0 {
		hold, handshake := reauthSchedule(lifetime, rand.Float64())
		if !l.sleepUntil(since.Add(hold)) {
			return
		}
		var err error
		if lifetime, since, err = l.reauthenticate(since.Add(handshake)); err != nil {
			l.failReauth(err)
			return
		}
	}
}

// sleepUntil waits for t; false when the lane closed first.
func (l *Lane[O]) sleepUntil(t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-l.done:
		return false
	case <-timer.C:
		return true
	}
}

// reauthenticate runs steps 1 to 4, sending the SaslHandshake no sooner
// than notBefore, and returns the new session lifetime and when the
// exchange began.
func (l *Lane[O]) reauthenticate(notBefore time.Time) (time.Duration, time.Time, error) {
	r := l.reauth
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return 0, time.Time{}, ErrLaneClosed
	}
	r.holding = true
	// No idle close while requests may be parked; release re-arms it.
	_ = l.conn.SetReadDeadline(time.Time{})
	drained := make(chan struct{})
	if l.head == len(l.pending) {
		close(drained)
	} else {
		r.drained = drained
	}
	l.mu.Unlock()
	select {
	case <-drained:
	case <-l.done:
		return 0, time.Time{}, ErrLaneClosed
	}
	// A connection a reload made stale would re-authenticate with the new
	// settings, which a broker refuses for a new principal: with nothing
	// parked, it retires instead (retireStaleLocked).
	l.mu.Lock()
	retired := len(r.held) == 0 && l.origin.stale() && l.endLocked(errRetired)
	l.mu.Unlock()
	if retired {
		return 0, time.Time{}, ErrLaneClosed
	}
	if !l.sleepUntil(notBefore) {
		return 0, time.Time{}, ErrLaneClosed
	}

	d := r.conn.dialer
	ctx, cancel := context.WithTimeout(context.Background(), max(d.Timeout, time.Second))
	defer cancel()
	sasl := d.sec.Load().sasl
	if sasl == nil { // upstream.sasl turned off by a reload: end the lane
		return 0, time.Time{}, errors.New("upstream.sasl was turned off by a reload: the authenticated connection ends at its session lifetime")
	}
	started := time.Now()
	lifetime, err := sasl.authenticate(ctx, r.conn.addr, l.exchange)
	if err != nil {
		if errors.Is(err, ErrLaneClosed) {
			return 0, time.Time{}, err
		}
		d.failed(r.conn.addr, err)
		return 0, time.Time{}, err
	}
	d.succeeded(r.conn.addr)
	if d.log != nil {
		d.log.Debug("lane re-authenticated", zap.String("upstream", r.conn.addr), zap.Float64("session_lifetime_s", lifetime.Seconds()))
	}
	l.release(lifetime, started)
	return lifetime, started, nil
}

// exchange sends one of the lane's own requests through its FIFO and waits
// for the answer; nothing else is pending meanwhile.
func (l *Lane[O]) exchange(ctx context.Context, req kmsg.Request, resp kmsg.Response) error {
	reply := &authReply{ch: make(chan *bufpool.Buf, 1)}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrLaneClosed
	}
	r := l.reauth
	r.corr++
	corr := r.corr
	l.pending = append(l.pending, pending[O]{corr: corr, auth: reply, acks0Before: l.acks0.sent})
	l.queue = append(l.queue, bufpool.Wrap(AppendRequest(nil, req, corr, clientID)))
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	var frame *bufpool.Buf
	select {
	case frame = <-reply.ch:
		if frame == nil {
			return reply.err
		}
	case <-l.done:
		select {
		case frame = <-reply.ch: // the reader's verdict wins
			if frame == nil {
				return reply.err
			}
		default:
			return ErrLaneClosed
		}
	case <-ctx.Done():
		return fmt.Errorf("no answer to %s: %w", kmsg.NameForKey(req.Key()), ctx.Err())
	}
	// Not returned to the pool: the decoded answer aliases the frame.
	if got := int32(binary.BigEndian.Uint32(frame.B[4:])); got != corr {
		return fmt.Errorf("%s answer: correlation id %d, want %d", kmsg.NameForKey(req.Key()), got, corr)
	}
	return DecodeResponse(frame.B[8:], req, resp)
}

// release records the new SASL session and queues the requests parked
// during the exchange, in order.
func (l *Lane[O]) release(lifetime time.Duration, since time.Time) {
	l.mu.Lock()
	r := l.reauth
	r.lifetime, r.since = lifetime, since
	l.idleSince = time.Now() // the exchange was traffic: the broker's idle clock restarted
	r.holding = false
	held := r.held
	r.held = nil
	if len(held) == 0 {
		if l.idleLocked() && l.opts.IdleTimeout > 0 {
			_ = l.conn.SetReadDeadline(time.Now().Add(l.opts.IdleTimeout))
		}
		l.mu.Unlock()
		return
	}
	_ = l.conn.SetReadDeadline(time.Time{})
	for _, h := range held {
		l.enlistLocked(h.corr, h.expect, h.owner)
		l.queue = append(l.queue, h.frame)
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// failReauth ends the lane after a failed re-authentication. Parked
// requests make it a failure the session must see; otherwise nothing was
// lost and the next request dials (and authenticates) again.
func (l *Lane[O]) failReauth(err error) {
	if errors.Is(err, ErrLaneClosed) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if lost := len(l.reauth.held); lost > 0 {
		l.endLocked(fmt.Errorf("re-authentication failed with %d requests waiting: %w", lost, err))
		return
	}
	l.reauth.holding = false
	l.endLocked(net.ErrClosed)
}
