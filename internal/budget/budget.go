// Package budget bounds the bytes kproxy holds for its clients: request
// frames being read or queued for a lane, answers waiting for a client, and
// rewritten answers. It is the broker's own model (KIP-72,
// queued.max.request.bytes): when the budget is spent, kproxy stops reading
// from clients instead of allocating past it.
//
// Every session has an Account. A session may hold up to its share of the
// budget, or one frame when it holds nothing else, so that one client that
// hoards (sends huge frames, or does not read its answers) is throttled
// while its neighbours go on. The last share of the budget is kept for the
// answers at the head of a session's queue: the answer a client is waiting
// for next, which strict ordering needs before it can write any later one,
// never waits behind the bytes of requests and of later answers.
package budget

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Shares is how many sessions may each hold a full share before the budget
// is spent: a session's share is the budget divided by it.
const Shares = 16

// Budget is the process-wide byte budget.
type Budget struct {
	limit int64
	share int64
	used  atomic.Int64
	peak  atomic.Int64

	gauge prometheus.Gauge
	hit   func()

	mu      sync.Mutex
	waiters atomic.Int32
	wake    chan struct{} // closed and replaced when bytes come back and someone waits
}

// New returns a budget of limit bytes. gauge follows the bytes held; hit
// is called each time a caller has to wait. Both may be nil.
func New(limit int64, gauge prometheus.Gauge, hit func()) *Budget {
	return &Budget{limit: limit, share: max(limit/Shares, 1), gauge: gauge, hit: hit, wake: make(chan struct{})}
}

// Limit is the budget in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// Share is what one session may hold beyond a single frame.
func (b *Budget) Share() int64 { return b.share }

// Used is the number of bytes held now.
func (b *Budget) Used() int64 { return b.used.Load() }

// Peak is the highest Used has been.
func (b *Budget) Peak() int64 { return b.peak.Load() }

// tryTake takes n bytes if that leaves used within ceiling.
func (b *Budget) tryTake(n, ceiling int64) bool {
	for {
		used := b.used.Load()
		if used+n > ceiling {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			break
		}
	}
	b.moved(n)
	return true
}

func (b *Budget) moved(n int64) {
	if b.gauge != nil {
		b.gauge.Add(float64(n))
	}
	if n <= 0 {
		return
	}
	used := b.used.Load()
	for {
		p := b.peak.Load()
		if used <= p || b.peak.CompareAndSwap(p, used) {
			return
		}
	}
}

func (b *Budget) release(n int64) {
	if n != 0 {
		b.used.Add(-n)
		b.moved(-n)
	}
	if b.waiters.Load() > 0 {
		b.mu.Lock()
		if b.waiters.Load() > 0 {
			b.waiters.Store(0)
			close(b.wake)
			b.wake = make(chan struct{})
		}
		b.mu.Unlock()
	}
}

// waitChan registers a waiter and returns the channel closed at the next
// release.
func (b *Budget) waitChan() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.waiters.Add(1)
	return b.wake
}

// Account is one session's part of the budget. It implements
// bufpool.Meter: a charged frame credits it when it goes back to the pool.
type Account struct {
	b    *Budget
	held atomic.Int64
}

// NewAccount opens an account on b.
func (b *Budget) NewAccount() *Account { return &Account{b: b} }

// Held is the bytes the account holds.
func (a *Account) Held() int64 { return a.held.Load() }

// Release implements bufpool.Meter.
func (a *Account) Release(n int) {
	if n == 0 {
		return
	}
	a.held.Add(-int64(n))
	a.b.release(int64(n))
}

// Kind says what bytes are for; it decides which rule they are held to.
type Kind uint8

const (
	// Request bytes of a frame being read (own is what the frame holds
	// already), or queued answers that are not next in line.
	Request Kind = iota
	// Head is the answer the client is owed next: it may take the
	// session past its share and into the reserve.
	Head
)

// try takes n bytes if the rules allow; own is the part of the account's
// holding that belongs to the same frame.
func (a *Account) try(n, own int64, kind Kind) bool {
	b := a.b
	ceiling := b.limit - b.share // the reserve is for head answers
	if kind == Head {
		ceiling = b.limit
	} else if held := a.held.Load(); held+n > b.share && held > own {
		return false // past its share and holding more than this frame
	}
	if !b.tryTake(n, ceiling) {
		return false
	}
	a.held.Add(n)
	return true
}

// TryTake takes n bytes if the rules allow it now; own is the part of the
// account's holding that belongs to the same frame.
func (a *Account) TryTake(n, own int, kind Kind) bool { return a.try(int64(n), int64(own), kind) }

// Hit counts a caller that has to wait for the budget.
func (a *Account) Hit() {
	if a.b.hit != nil {
		a.b.hit()
	}
}

// Wait returns a channel closed at the next release of budget (or Nudge);
// try again after taking it, before waiting on it.
func (a *Account) Wait() <-chan struct{} { return a.b.waitChan() }

// Nudge wakes every waiter: what decides their rule changed (a session's
// next answer) without bytes coming back.
func (a *Account) Nudge() { a.b.release(0) }

// Take takes n bytes, waiting while the rules do not allow it. It returns
// false, having taken nothing, if done closes first.
func (a *Account) Take(n, own int, kind Kind, done <-chan struct{}) bool {
	if a.TryTake(n, own, kind) {
		return true
	}
	a.Hit()
	for {
		wake := a.Wait()
		if a.TryTake(n, own, kind) {
			return true
		}
		select {
		case <-wake:
		case <-done:
			return false
		}
	}
}

// Force takes n bytes whatever the budget says: for bytes that exist
// already (a rewrite's output beyond what was taken for it).
func (a *Account) Force(n int) {
	a.held.Add(int64(n))
	a.b.used.Add(int64(n))
	a.b.moved(int64(n))
}
