package router

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kbin"
)

// ErrBadLength: a length in a request body that its frame cannot hold.
var ErrBadLength = errors.New("length does not fit the frame")

// CheckRequest reports why a request that kproxy reads or patches cannot be
// parsed, so that it stops at the proxy instead of making the broker drop
// the connection, which the session would have to report as the broker's
// failure. Produce and Fetch, the hot path, are walked without allocating:
// Fetch up to the long-poll wait; Produce up to acks and timeout (in q's
// Frame, which for a frame with a tail is its head: ErrTruncated when they
// are not in it), then its topics, so that no topic, partition or records
// length runs past the frame's end (ErrBadLength). The other APIs the
// proxy reads (ApiVersions, group and admin timeouts) or whose answers it
// rewrites are decoded whole. decoded says whether the answer is
// rewritten. Versions beyond kmsg are not checked here.
func (p *Protocol) CheckRequest(q *Request, decoded bool) error {
	if !p.Known(q.Key) || q.Version < 0 || q.Version > p.MaxVersion(q.Key) {
		return nil
	}
	switch q.Key {
	case KeyProduce:
		r, err := q.body()
		if err != nil {
			return err
		}
		if q.Version >= 3 {
			q.skipString(&r) // TransactionalID
		}
		r.skip(2 + 4) // Acks, TimeoutMillis
		if r.bad {
			return fmt.Errorf("acks and timeout: %w", ErrTruncated)
		}
		return checkProduceTopics(q, r.off)
	case KeyFetch, KeyShareFetch:
		if _, err := p.FetchMaxWaitOffset(q); err != nil {
			return fmt.Errorf("max wait: %w", err)
		}
		return nil
	}
	if !decoded && !readByProxy(q.Key) {
		return nil
	}
	return decodeBody(q, nil)
}

// readByProxy are the APIs, beside Produce and Fetch, whose requests the
// proxy reads: the client's software name, and request timeouts.
func readByProxy(key int16) bool {
	switch key {
	case KeyApiVersions, KeyJoinGroup, KeySyncGroup, KeyListOffsets, keyCreateTopics, keyDeleteTopics, keyDeleteRecords,
		keyCreatePartitions, keyElectLeaders, keyAlterPartitionAssignments, keyListPartitionReassignments, keyUpdateFeatures:
		return true
	}
	return false
}

// checkProduceTopics walks a Produce body's topics from off as kmsg reads
// them, so that it refuses exactly the lengths kmsg's decoder refuses.
func checkProduceTopics(q *Request, off int) error {
	w := produceWalk{b: q.Frame, off: off, end: len(q.Frame) + q.unread, flex: q.Flexible}
	perTopic := int64(2) // kmsg's least bytes per entry, its check before it allocates
	if q.Version >= 13 {
		perTopic = 18
	}
	for range w.arrayLen("topics", perTopic) {
		if q.Version >= 13 {
			w.skip("topic id", 16)
		} else {
			w.str("topic name")
		}
		for range w.arrayLen("partitions", 6) {
			w.skip("partition", 4)
			w.nullableBytes("records")
			w.tags()
			if !w.going() {
				break
			}
		}
		w.tags()
		if !w.going() {
			break
		}
	}
	w.tags()
	return w.err
}

// produceWalk steps over a Produce body checking only that each length
// fits, without keeping anything. A frame whose tail is unread is walked as
// far as its head shows: a length past the frame's declared end fails the
// walk; one that only runs past the head ends it, unseen.
type produceWalk struct {
	b      []byte // the frame as read
	off    int
	end    int // where the frame ends, as its size declares
	flex   bool
	unseen bool // the walk reached the end of b before the frame's end
	err    error
}

func (w *produceWalk) going() bool { return !w.unseen && w.err == nil }

// fits reports whether the next n bytes, what, can be read.
func (w *produceWalk) fits(what string, n int) bool {
	switch {
	case !w.going():
		return false
	case n < 0:
		w.err = fmt.Errorf("%s length %d: %w", what, n, ErrBadLength)
		return false
	case n > w.end-w.off:
		w.err = fmt.Errorf("%s of %d bytes with %d left in the frame: %w", what, n, w.end-w.off, ErrBadLength)
		return false
	case n > len(w.b)-w.off:
		w.unseen = true
		return false
	}
	return true
}

func (w *produceWalk) skip(what string, n int) {
	if w.fits(what, n) {
		w.off += n
	}
}

func (w *produceWalk) int16(what string) int16 {
	if !w.fits(what, 2) {
		return 0
	}
	w.off += 2
	return int16(binary.BigEndian.Uint16(w.b[w.off-2:]))
}

func (w *produceWalk) int32(what string) int32 {
	if !w.fits(what, 4) {
		return 0
	}
	w.off += 4
	return int32(binary.BigEndian.Uint32(w.b[w.off-4:]))
}

// uvarint reads kbin's 32-bit uvarint.
func (w *produceWalk) uvarint(what string) uint32 {
	if !w.going() {
		return 0
	}
	v, n := kbin.Uvarint(w.b[w.off:])
	switch {
	case n > 0:
		w.off += n
		return v
	case n == 0 && len(w.b) < w.end:
		w.unseen = true
	default:
		w.err = fmt.Errorf("%s: bad uvarint: %w", what, ErrBadLength)
	}
	return 0
}

// arrayLen reads an array length as kmsg does (negative: no entries) and
// fails it when the rest of the frame cannot hold that many entries of at
// least min bytes.
func (w *produceWalk) arrayLen(what string, min int64) int {
	var n int32
	if w.flex {
		n = int32(w.uvarint(what)) - 1
	} else {
		n = w.int32(what)
	}
	if !w.going() {
		return 0
	}
	if left := int64(w.end - w.off); int64(n) > left || int64(n)*min > left {
		w.err = fmt.Errorf("%d %s with %d bytes left in the frame: %w", n, what, left, ErrBadLength)
		return 0
	}
	return int(n)
}

// str steps over a string: a negative length fails, as in kmsg.
func (w *produceWalk) str(what string) {
	if w.flex {
		w.skip(what, int(w.uvarint(what))-1)
	} else {
		w.skip(what, int(w.int16(what)))
	}
}

// nullableBytes steps over bytes whose negative length is null.
func (w *produceWalk) nullableBytes(what string) {
	n := 0
	if w.flex {
		n = int(w.uvarint(what)) - 1
	} else {
		n = int(w.int32(what))
	}
	if n > 0 {
		w.skip(what, n)
	}
}

// tags steps over a tagged-field section when the version is flexible.
func (w *produceWalk) tags() {
	if !w.flex {
		return
	}
	for k := w.uvarint("tags"); k > 0 && w.going(); k-- {
		w.uvarint("tag")
		w.skip("tagged field", int(w.uvarint("tag size")))
	}
}
