package upstream

import (
	"fmt"
	"slices"
	"time"
)

// What a lane knows of the acks=0 produces it sent. Kafka never answers
// one, and reports its failure by closing the connection; it processes a
// connection's requests in order, so the answer to a request sent after an
// acks=0 produce means the produce went through. Some non-Kafka servers
// answer acks=0 produces anyway, and may answer them late, after later
// requests: such an answer is read and dropped, but only for the
// correlation id of an acks=0 produce this lane sent. Any other answer that
// is not the next one due fails the lane, as in franz-go's broker
// connection (errCorrelationIDMismatch). A lane that carried an acks=0
// produce is never pooled (Release): its answer may still come, and the
// next session's lane would take it for the answer to its own request with
// that correlation id.
type acks0Log struct {
	sent      int       // acks=0 produces enlisted
	confirmed int       // of them, those sent before the latest answered request
	lastSent  time.Time // when the latest was enlisted
	owed      []int32   // the correlation ids of the latest acks0Remembered, less those answered
}

// acks0Remembered bounds the correlation ids a lane keeps for answers to
// acks=0 produces: far more than a client keeps in flight on a connection
// (five, by default, for the Java client, franz-go and sarama). An answer
// to one forgotten fails the lane.
const acks0Remembered = 128

func (a *acks0Log) add(corr int32, now time.Time) {
	a.sent++
	a.lastSent = now
	if len(a.owed) == acks0Remembered {
		copy(a.owed, a.owed[1:])
		a.owed = a.owed[:len(a.owed)-1]
	}
	a.owed = append(a.owed, corr)
}

// unconfirmed counts the acks=0 produces that no answer followed yet: the
// broker may still close the connection over one of them.
func (a *acks0Log) unconfirmed() int { return a.sent - a.confirmed }

// acks0SettledLocked is called when the idle timer fires with no answer
// due. A broker reports an acks=0 produce's failure by closing the
// connection as it processes the produce, so a lane quiet for the idle
// timeout since its latest one has nothing left to hear about them: they
// count as confirmed, and the lane may idle out (the broker itself closes
// a connection quiet for connections.max.idle.ms, which is no failure).
// false: a later acks=0 produce restarted the timer, which is re-armed.
func (l *Lane[O]) acks0SettledLocked() bool {
	if l.head != len(l.pending) || l.acks0.unconfirmed() == 0 {
		return true
	}
	if since := time.Since(l.acks0.lastSent); since < l.opts.IdleTimeout {
		l.armIdleLocked(l.acks0.lastSent)
		return false
	}
	l.acks0.confirmed = l.acks0.sent
	return true
}

// answered reports whether corr is that of an acks=0 produce still owed an
// answer, which it no longer is.
func (a *acks0Log) answered(corr int32) bool {
	i := slices.Index(a.owed, corr)
	if i < 0 {
		return false
	}
	a.owed = slices.Delete(a.owed, i, i+1)
	return true
}

// match pops the pending entry a response answers: the next one due. An
// answer to an acks=0 produce is dropped (deliver false); any other is a
// protocol error.
func (l *Lane[O]) match(corr int32) (p pending[O], deliver bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.head < len(l.pending) && l.pending[l.head].corr == corr {
		p = l.pending[l.head]
		l.pending[l.head] = pending[O]{}
		l.head++
		l.acks0.confirmed = p.acks0Before
		l.answering = false
		l.headAt = time.Now()
		if l.head == len(l.pending) {
			l.head, l.pending = 0, l.pending[:0]
			if l.reauth != nil {
				l.reauth.drainedLocked()
			}
			now := time.Now()
			l.idleSince = now
			if l.reauth == nil || !l.reauth.holding {
				l.armIdleLocked(now) // with acks=0 produces unconfirmed too
			}
			l.retireStaleLocked() // this answer is still delivered; the reader stops at the next read
		}
		return p, true, nil
	}
	if l.acks0.answered(corr) {
		return p, false, nil
	}
	if l.head < len(l.pending) {
		return p, false, fmt.Errorf("correlation id mismatch: broker answered %d, expected %d", corr, l.pending[l.head].corr)
	}
	return p, false, fmt.Errorf("unexpected response with correlation id %d: nothing pending", corr)
}
