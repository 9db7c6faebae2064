// Package bufpool recycles frame buffers so that forwarding a frame does not
// allocate in steady state.
package bufpool

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

const (
	minShift = 9 // 512 B
	// maxShift: 64 MiB. A consumer's Fetch answer is often several MiB
	// (fetch.max.bytes defaults to 50 MiB, 1 MiB per partition); above 4
	// MiB, which was the limit, every such answer was a fresh allocation.
	// sync.Pool lets idle buffers go within two garbage collections, so
	// large classes pin nothing for long.
	maxShift = 26
	// keepShift: classes up to 4 MiB keep one buffer that garbage
	// collection does not take (at most 8 MiB in all, and only for classes
	// in use). A busy proxy's heap is mostly short-lived frames, so GC runs
	// often and empties sync.Pool between bursts; the kept buffer covers
	// the common case of one frame of a size in flight.
	keepShift = 22
)

// Buf is a pooled byte slice. B has the length asked for.
type Buf struct {
	B []byte
	// More is the rest of a frame made in pieces, written after B in
	// order: a frame whose parts are built at once in buffers of their own
	// (a bridged Fetch answer's message sets) is never copied into one.
	// Put puts them back with B.
	More  []*Buf
	class int8 // -1: not pooled

	// meter is credited charged bytes when the Buf goes back (Put): the
	// memory budget follows a frame through every hand-off without each
	// holder having to know about it.
	meter   Meter
	charged int
}

// Meter counts the bytes held in charged Bufs.
type Meter interface{ Release(n int) }

// Charge makes Put credit m with n bytes, on top of any earlier charge.
func (b *Buf) Charge(m Meter, n int) {
	if b.meter != nil && b.meter != m {
		b.meter.Release(b.charged)
		b.charged = 0
	}
	b.meter = m
	b.charged += n
}

// Charged is the number of bytes Put will credit.
func (b *Buf) Charged() int { return b.charged }

// Pool hands out Bufs by power-of-two size class.
type Pool struct {
	classes [maxShift - minShift + 1]sync.Pool
	kept    [keepShift - minShift + 1]atomic.Pointer[Buf]
}

// New returns an empty pool.
func New() *Pool {
	p := new(Pool)
	for i := range p.classes {
		size := 1 << (minShift + i)
		class := int8(i)
		p.classes[i].New = func() any { return &Buf{B: make([]byte, size), class: class} }
	}
	return p
}

// Cap is the capacity a Buf of n bytes has: the size class it comes from.
func Cap(n int) int {
	class := classOf(n)
	if class < 0 {
		return n
	}
	return 1 << (minShift + int(class))
}

// Get returns a Buf with len(B) == n.
func (p *Pool) Get(n int) *Buf {
	class := classOf(n)
	if class < 0 {
		return &Buf{B: make([]byte, n), class: -1}
	}
	var b *Buf
	if int(class) < len(p.kept) {
		b = p.kept[class].Swap(nil)
	}
	if b == nil {
		b = p.classes[class].Get().(*Buf)
	}
	b.B = b.B[:n]
	return b
}

// Put returns b to the pool; b must not be used afterwards. nil is ignored.
func (p *Pool) Put(b *Buf) {
	if b == nil {
		return
	}
	if b.meter != nil {
		b.meter.Release(b.charged)
		b.meter, b.charged = nil, 0
	}
	for _, m := range b.More {
		p.Put(m)
	}
	clear(b.More)
	b.More = b.More[:0]
	if b.class < 0 {
		return
	}
	b.B = b.B[:cap(b.B)]
	if int(b.class) < len(p.kept) && p.kept[b.class].CompareAndSwap(nil, b) {
		return
	}
	p.classes[b.class].Put(b)
}

// Wrap adopts a slice that was not taken from the pool (Put drops it).
func Wrap(b []byte) *Buf { return &Buf{B: b, class: -1} }

func classOf(n int) int8 {
	if n <= 1<<minShift {
		return 0
	}
	shift := bits.Len(uint(n - 1))
	if shift > maxShift {
		return -1
	}
	return int8(shift - minShift)
}
