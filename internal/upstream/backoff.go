package upstream

import (
	"fmt"
	"sync"
	"time"
)

// backoffBase is the wait after the first failed dial to a broker.
const backoffBase = 100 * time.Millisecond

// Backoff spaces out dials to a broker that keeps refusing them: after n
// failed dials in a row, the next is allowed only after 100ms·2^(n-1),
// capped at the maximum, and a dial asked for sooner fails at once with a
// *BackoffError. Without it every client retry would wait out a full dial
// timeout against a dead broker, or hammer one that refuses. A successful
// dial forgets the broker's failures. A nil *Backoff allows every dial.
type Backoff struct {
	max time.Duration
	now func() time.Time

	mu    sync.Mutex
	addrs map[string]*backoffState // at most one entry per broker address
}

type backoffState struct {
	failures int
	until    time.Time
}

// BackoffError is a dial refused because the broker's last dials failed.
type BackoffError struct {
	Addr     string
	Failures int
	Retry    time.Duration // until the next dial is allowed
}

func (e *BackoffError) Error() string {
	return fmt.Sprintf("dial %s: not tried: its last %d dials failed; next dial in %v (upstream.dial_backoff_max)", e.Addr, e.Failures, e.Retry.Round(time.Millisecond))
}

// NewBackoff returns a backoff capped at max, or nil (no backoff) for max 0.
func NewBackoff(max time.Duration) *Backoff {
	if max <= 0 {
		return nil
	}
	return &Backoff{max: max, now: time.Now, addrs: map[string]*backoffState{}}
}

// allow reports a *BackoffError while addr is backing off.
func (b *Backoff) allow(addr string) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st, ok := b.addrs[addr]
	if !ok {
		return nil
	}
	if wait := st.until.Sub(b.now()); wait > 0 {
		return &BackoffError{Addr: addr, Failures: st.failures, Retry: wait}
	}
	return nil
}

// record notes the outcome of a dial to addr.
func (b *Backoff) record(addr string, err error) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		delete(b.addrs, addr)
		return
	}
	st, ok := b.addrs[addr]
	if !ok {
		st = &backoffState{}
		b.addrs[addr] = st
	}
	st.failures++
	wait := b.max
	if shift := st.failures - 1; shift < 20 {
		wait = min(backoffBase<<shift, b.max)
	}
	st.until = b.now().Add(wait)
}
