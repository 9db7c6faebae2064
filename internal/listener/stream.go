package listener

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/kproxy/kproxy/internal/budget"
	"github.com/kproxy/kproxy/internal/bufpool"
)

// streamChunk is the copy buffer for streamed answers. A read returns what
// has arrived, so a larger buffer never delays a byte;
// it only saves system calls when the broker outruns the client.
const streamChunk = 256 << 10

// LaneStream implements upstream.Handler: a large answer that is next in
// line for the client and cannot need a rewrite goes out as it arrives,
// instead of after its last byte. Anything else is buffered as usual.
func (s *session) LaneStream(sl *slot, header []byte, body io.Reader, n int) (bool, error) {
	if sl.bridge != nil || s.pol.rewriter.MayRewrite(sl.key, sl.version) {
		return false, nil
	}
	g, took := sl.group, time.Since(sl.sent) // the answer's header is in; sl is recycled once streamed
	streamed, err := s.answers.stream(sl, header, body, n)
	if streamed {
		s.view.countAnswered(g, took)
	}
	return streamed, err
}

// stream writes sl's answer as it arrives, while the client's socket takes
// it at once. When the socket fills, the rest of the answer is read into a
// buffer and handed to a writer goroutine: the lane reader never waits on
// the client.
func (q *answerQueue) stream(sl *slot, header []byte, body io.Reader, n int) (bool, error) {
	if !q.raw.ok() {
		return false, nil // every write may wait: buffer instead
	}
	q.mu.Lock()
	if q.closed || q.writing || q.head == len(q.slots) || q.slots[q.head] != sl {
		q.mu.Unlock()
		return false, nil
	}
	// Become the writer, as deliver does, and take the slot off the queue:
	// from here on this answer is ours to finish or to fail.
	q.writing = true
	now := time.Now()
	sl.doneAt = now
	q.orderingAnswered(sl, now)
	q.slots[q.head] = nil
	q.head++
	if q.head == len(q.slots) {
		q.head, q.slots = 0, q.slots[:0]
	}
	q.instr.inflight[sl.group].Dec()
	q.mu.Unlock()

	q.instr.answered(sl.key, sl.group, now.Sub(sl.sent))
	q.instr.hold[sl.group].Observe(0)
	q.instr.m.StreamedResponses.Inc()
	key, version := sl.key, sl.version
	*sl = slot{snap: sl.snap[:0]}
	slotPool.Put(sl)

	rest, upstreamErr, clientErr := q.copyAnswer(header, body, n, key, version)
	switch {
	case upstreamErr != nil:
		<-q.tokens
		// The client has part of a frame: only closing its connection
		// keeps the stream well-formed. The lane reports the failure.
		return true, upstreamErr
	case clientErr != nil:
		<-q.tokens
		q.fail(reasonClientWriteFailed, clientErr)
		return true, fmt.Errorf("client went away mid-answer: %w", clientErr)
	case rest != nil:
		q.iov = append(q.iov[:0], rest.B)
		q.out = q.iov
		go q.writeBehind(rest) // the writer goroutine finishes the answer
		return true, nil
	}
	<-q.tokens
	q.mu.Lock()
	q.writeReady(false) // whatever completed meanwhile
	return true, nil
}

// throttlePeek is how much of a streamed answer's start the first read
// waits for, so that the broker's throttle time (after the header's tag
// section, usually empty) is read from it.
const throttlePeek = 16

// copyAnswer writes header and then n body bytes from body to the client
// while its socket takes them at once. If it fills, the bytes not written
// yet and the rest of the body are read into rest, for the writer goroutine.
// The answer's throttle time (key, version) is read on the way.
func (q *answerQueue) copyAnswer(header []byte, body io.Reader, n int, key, version int16) (rest *bufpool.Buf, upstreamErr, clientErr error) {
	size := min(streamChunk, n)
	c := bufpool.Cap(size)
	if !q.acct.Take(c, 0, budget.Head, q.done) {
		return nil, nil, net.ErrClosed
	}
	buf := q.pool.Get(size)
	buf.Charge(q.acct, c)
	defer q.pool.Put(buf)
	chunk := append(buf.B[:0], header...)
	for first := true; ; first = false {
		q.iov = append(q.iov[:0], chunk)
		q.out = q.iov
		if _, err := q.tryWrite(); err != nil {
			return nil, nil, err
		}
		if len(q.out) > 0 {
			left := q.out[0]
			rest = q.bufferRest(left, n)
			if rest == nil {
				return nil, nil, net.ErrClosed
			}
			if _, err := io.ReadFull(body, rest.B[len(left):]); err != nil {
				q.pool.Put(rest)
				return nil, readErr(err), nil
			}
			if first {
				q.instr.throttle(key, version, rest.B[len(left):])
			}
			return rest, nil, nil
		}
		if n == 0 {
			return nil, nil, nil
		}
		var r int
		var err error
		if first {
			r, err = io.ReadAtLeast(body, buf.B[:min(len(buf.B), n)], min(throttlePeek, n))
			q.instr.throttle(key, version, buf.B[:r])
		} else {
			r, err = body.Read(buf.B[:min(len(buf.B), n)])
		}
		n -= r
		chunk = buf.B[:r]
		if err != nil && n > 0 {
			return nil, readErr(err), nil
		}
	}
}

// bufferRest returns a charged buffer holding left, with room for n more
// bytes after it.
func (q *answerQueue) bufferRest(left []byte, n int) *bufpool.Buf {
	size := len(left) + n
	c := bufpool.Cap(size)
	if !q.acct.Take(c, 0, budget.Head, q.done) {
		return nil
	}
	rest := q.pool.Get(size)
	rest.Charge(q.acct, c)
	copy(rest.B, left)
	return rest
}

func readErr(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read upstream answer: %w", err)
}
