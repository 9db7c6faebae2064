//go:build unix

package bufpool

import (
	"io"
	"os"
	"syscall"
)

const rawReads = true

// tryRead is the syscall.RawConn read callback: false parks the goroutine
// until the descriptor is readable, and the buffer goes back to the pool
// first.
func (r *Reader) tryRead(fd uintptr) bool {
	if r.buf == nil {
		r.buf = r.pool.Get(r.size)
	}
	for {
		n, err := syscall.Read(int(fd), r.buf.B)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			r.pool.Put(r.buf)
			r.buf = nil
			return false
		case err != nil:
			r.err = os.NewSyscallError("read", err)
		case n == 0:
			r.err = io.EOF
		default:
			r.n = n
		}
		return true
	}
}
