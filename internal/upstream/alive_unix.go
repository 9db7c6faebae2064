//go:build unix

package upstream

import (
	"crypto/tls"
	"io"
	"net"
	"syscall"
)

// alive checks, without blocking and without consuming a byte, that the
// broker has not closed a pooled connection and sent nothing meanwhile (a
// broker never speaks first, so any byte makes it unusable). A read with a
// deadline cannot tell: Go fails a read past its deadline before asking the
// socket, so this peeks at the descriptor itself. Under TLS it peeks at the
// TCP socket below: a closing alert or a FIN shows there too.
func alive(conn net.Conn) error {
	if ac, ok := conn.(*dialedConn); ok {
		conn = ac.Conn
	}
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var state error
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		for {
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
				state = nil // nothing to read: open and quiet
			case err != nil:
				state = err
			case n == 0:
				state = io.EOF
			default:
				state = errUnsolicited
			}
			return true
		}
	})
	if err != nil {
		return err
	}
	return state
}
