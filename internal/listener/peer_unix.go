//go:build unix

package listener

import (
	"net"
	"syscall"
)

// clientGone reports whether the client has closed or reset conn, without
// blocking and without consuming a byte: a peek at the socket itself, as
// upstream's pool checks a pooled connection (Control, not Read: a read
// deadline that has passed would fail Read before it looked). A splice
// that failed cannot say which of its two sockets failed; this says
// whether it was the client's.
func clientGone(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true // closed already
	}
	gone := true
	err = raw.Control(func(fd uintptr) {
		var b [1]byte
		for {
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
				gone = false // open, nothing to read yet
			default:
				gone = err != nil || n == 0 // reset, or end of stream
			}
			return
		}
	})
	return gone || err != nil
}
