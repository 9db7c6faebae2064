package listener

import (
	"fmt"
	"io"
	"time"
)

// streamChunk is the copy buffer for streamed answers. A read returns what
// has arrived, so a larger buffer never delays a byte;
// it only saves system calls when the broker outruns the client.
const streamChunk = 256 << 10

// LaneStream implements upstream.Handler: a large answer that is next in
// line for the client and cannot need a rewrite goes out as it arrives,
// instead of after its last byte. Anything else is buffered as usual.
func (s *session) LaneStream(owner any, header []byte, body io.Reader, n int) (bool, error) {
	sl := owner.(*slot)
	if s.srv.rewriter.MayRewrite(sl.key, sl.version) {
		return false, nil
	}
	s.mu.Lock()
	if s.closed || s.writing || s.head == len(s.slots) || s.slots[s.head] != sl {
		s.mu.Unlock()
		return false, nil
	}
	// Become the writer, as deliver does, and take the slot off the queue:
	// from here on this answer is ours to finish or to fail.
	s.writing = true
	now := time.Now()
	sl.doneAt = now
	s.orderingAnswered(sl, now)
	s.slots[s.head] = nil
	s.head++
	if s.head == len(s.slots) {
		s.head, s.slots = 0, s.slots[:0]
	}
	s.srv.instr.inflight[sl.group].Dec()
	s.mu.Unlock()

	s.srv.instr.answered(sl.key, sl.group, now.Sub(sl.sent))
	s.countAnswered(sl.group, now.Sub(sl.sent))
	s.srv.instr.hold[sl.group].Observe(0)
	s.srv.metrics.StreamedResponses.Inc()
	key, version := sl.key, sl.version
	*sl = slot{snap: sl.snap[:0]}
	slotPool.Put(sl)

	upstreamErr, clientErr := s.copyAnswer(header, body, n, key, version)
	<-s.sem
	switch {
	case upstreamErr != nil:
		// The client has part of a frame: only closing its connection
		// keeps the stream well-formed. The lane reports the failure.
		return true, upstreamErr
	case clientErr != nil:
		s.close(reasonClientWriteFailed, clientErr)
		return true, fmt.Errorf("client went away mid-answer: %w", clientErr)
	}
	s.mu.Lock()
	s.writing = false
	s.mu.Unlock()
	s.deliver() // whatever completed meanwhile
	return true, nil
}

// throttlePeek is how much of a streamed answer's start the first read
// waits for, so that the broker's throttle time (after the header's tag
// section, usually empty) is read from it.
const throttlePeek = 16

// copyAnswer writes header and then n body bytes from body to the client.
func (s *session) copyAnswer(header []byte, body io.Reader, n int, key, version int16) (upstreamErr, clientErr error) {
	buf := s.srv.pool.Get(min(streamChunk, n))
	defer s.srv.pool.Put(buf)
	w, err := s.conn.Write(header)
	written := w
	defer func() { s.srv.instr.clientOut.Add(float64(written)); s.countOut(written) }()
	if err != nil {
		return nil, err
	}
	for first := true; n > 0; first = false {
		var r int
		var err error
		if first {
			r, err = io.ReadAtLeast(body, buf.B[:min(len(buf.B), n)], min(throttlePeek, n))
			s.srv.instr.throttle(key, version, buf.B[:r])
		} else {
			r, err = body.Read(buf.B[:min(len(buf.B), n)])
		}
		n -= r
		if r > 0 {
			w, werr := s.conn.Write(buf.B[:r])
			written += w
			if werr != nil {
				return nil, werr
			}
		}
		if err != nil && n > 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read upstream answer: %w", err), nil
		}
	}
	return nil, nil
}
