package listener

import (
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawWriter writes to a plain socket without ever waiting for it: one
// writev that takes what the socket buffer has room for. A TLS connection
// has no such write; its answers always go through the writer goroutine.
type rawWriter struct {
	rc    syscall.RawConn // nil: no raw writes
	iovs  []syscall.Iovec
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool // write, bound once: no allocation per write
}

// iovMax is Linux's IOV_MAX.
const iovMax = 1024

func (w *rawWriter) init(conn net.Conn) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return
	}
	if _, tcp := conn.(*net.TCPConn); !tcp {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	w.rc = rc
	w.fn = w.write
}

func (w *rawWriter) ok() bool { return w.rc != nil }

func (w *rawWriter) write(fd uintptr) bool {
	n, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iovs[0])), uintptr(len(w.iovs)))
	w.n, w.errno = int(n), e
	return true // never park: a full socket is the writer goroutine's job
}

// tryWrite writes from *b what the socket takes now, consuming it from *b.
func (w *rawWriter) tryWrite(b *net.Buffers) (int, error) {
	if w.rc == nil {
		return 0, nil
	}
	total := 0
	for len(*b) > 0 {
		w.iovs = w.iovs[:0]
		want := 0
		for _, x := range *b {
			if len(x) == 0 {
				continue
			}
			if len(w.iovs) == iovMax {
				break
			}
			w.iovs = append(w.iovs, syscall.Iovec{Base: &x[0]})
			w.iovs[len(w.iovs)-1].SetLen(len(x))
			want += len(x)
		}
		if len(w.iovs) == 0 {
			*b = (*b)[:0]
			return total, nil
		}
		for {
			if err := w.rc.Write(w.fn); err != nil {
				clear(w.iovs)
				return total, err
			}
			if w.errno != syscall.EINTR {
				break
			}
		}
		clear(w.iovs) // no pointers into frames that go back to the pool
		switch {
		case w.errno == syscall.EAGAIN:
			return total, nil
		case w.errno != 0:
			return total, os.NewSyscallError("writev", w.errno)
		}
		total += w.n
		consume(b, w.n)
		if w.n < want {
			return total, nil // the socket is full
		}
	}
	return total, nil
}

// consume drops n written bytes from the front of b.
func consume(b *net.Buffers, n int) {
	for len(*b) > 0 && n >= len((*b)[0]) {
		n -= len((*b)[0])
		(*b)[0] = nil
		*b = (*b)[1:]
	}
	if len(*b) > 0 && n > 0 {
		(*b)[0] = (*b)[0][n:]
	}
}
