package upstream

import (
	"net"
	"syscall"
	"unsafe"
)

// sendRoom tells whether a plain socket's send buffer takes n more bytes
// now, whether or not the broker reads: SIOCOUTQ (bytes written and not
// yet acknowledged) against SO_SNDBUF. A broker does not read a connection
// while it works on one of its requests, so this is what a lane with a
// request in flight can take without its writer waiting on the broker.
type sendRoom struct {
	rc     syscall.RawConn // nil: not a plain socket; nothing is promised
	fn     func(fd uintptr)
	outq   int32
	sndbuf int32
	optlen uint32
	errno  syscall.Errno
}

func (r *sendRoom) init(conn net.Conn) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	r.rc, r.fn = rc, r.measure // bound once: no allocation per look
}

func (r *sendRoom) measure(fd uintptr) {
	// SIOCOUTQ, which Go's syscall names by its tty alias.
	_, _, r.errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&r.outq)))
	if r.errno != 0 {
		return
	}
	r.optlen = 4
	_, _, r.errno = syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF,
		uintptr(unsafe.Pointer(&r.sndbuf)), uintptr(unsafe.Pointer(&r.optlen)), 0)
}

// takes reports whether n more bytes fit the send buffer. SO_SNDBUF also
// counts the kernel's own memory for the bytes it holds (their buffers'
// truesize, a few percent over the bytes on loopback and Ethernet alike);
// an eighth is left for it.
func (r *sendRoom) takes(n int64) bool {
	if r.rc == nil || r.rc.Control(r.fn) != nil || r.errno != 0 {
		return false
	}
	need := int64(r.outq) + n
	return need+need/8 <= int64(r.sndbuf)
}
