//go:build unix

package peek

import (
	"io"
	"net"
	"syscall"
)

func socket(conn net.Conn) (State, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return Unknown, nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return Closed, err
	}
	state, seen := Unknown, error(nil)
	// Control, not Read: Read fails at once on a read deadline that has
	// passed, before it looks.
	err = raw.Control(func(fd uintptr) {
		var b [1]byte
		for {
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
				state = Quiet
			case err != nil:
				state, seen = Closed, err
			case n == 0:
				state, seen = Closed, io.EOF
			default:
				state = Data
			}
			return
		}
	})
	if err != nil {
		return Closed, err
	}
	return state, seen
}
