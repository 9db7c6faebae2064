package bufpool

import (
	"io"
	"syscall"
)

// Reader is a buffered reader over a connection that holds a pooled buffer
// only while bytes are arriving. When a read would block, the buffer goes
// back to the pool before the goroutine parks, so an idle client session
// or an idle lane pins no read buffer: at thousands of mostly idle
// connections that buffer would be most of their memory.
//
// On a connection with a file descriptor (TCP) it reads through
// syscall.RawConn, which costs the same system calls as net.Conn.Read: one
// read that finds nothing, the wait, the read that finds data. Other
// connections (TLS) fall back to reading through the conn with a buffer
// held for the connection's life, like bufio.Reader.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	conn io.Reader
	raw  syscall.RawConn // nil: plain reads
	pool *Pool
	size int
	buf  *Buf // nil while parked
	r, w int  // unread bytes are buf.B[r:w]

	// results of tryRead, set on the reading goroutine
	n    int
	err  error
	read func(fd uintptr) bool // tryRead, bound once: no allocation per read
}

// NewReader returns a Reader over conn whose buffer, while held, has size
// bytes. Reads of size bytes or more go straight into the caller's slice.
func (p *Pool) NewReader(conn io.Reader, size int) *Reader {
	r := &Reader{conn: conn, pool: p, size: size}
	if sc, ok := conn.(syscall.Conn); ok && rawReads {
		if raw, err := sc.SyscallConn(); err == nil {
			r.raw = raw
			r.read = r.tryRead
		}
	}
	return r
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.r == r.w {
		if len(p) >= r.size {
			r.release()
			return r.conn.Read(p)
		}
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf.B[r.r:r.w])
	r.r += n
	return n, nil
}

// Buffered is the number of bytes that can be read without a system call.
func (r *Reader) Buffered() int { return r.w - r.r }

// Release returns the buffer to the pool, if the reader holds one and it
// has nothing unread. The reader stays usable.
func (r *Reader) Release() {
	if r.r == r.w {
		r.release()
	}
}

func (r *Reader) release() {
	r.r, r.w = 0, 0
	if r.buf != nil {
		r.pool.Put(r.buf)
		r.buf = nil
	}
}

// fill reads at least one byte into an empty buffer.
func (r *Reader) fill() error {
	r.r, r.w = 0, 0
	if r.raw == nil {
		if r.buf == nil {
			r.buf = r.pool.Get(r.size)
		}
		for {
			n, err := r.conn.Read(r.buf.B)
			if n > 0 {
				r.w = n
				return nil // an error with data comes back on the next read
			}
			if err != nil {
				return err
			}
		}
	}
	r.n, r.err = 0, nil
	if err := r.raw.Read(r.read); err != nil {
		return err // deadline, or the connection closed
	}
	if r.err != nil {
		return r.err
	}
	r.w = r.n
	return nil
}
