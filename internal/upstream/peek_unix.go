//go:build linux || darwin || freebsd || netbsd || openbsd

package upstream

import (
	"net"
	"syscall"
)

// peek looks at the socket under conn without reading from it and without
// waiting (MSG_PEEK | MSG_DONTWAIT).
func peek(conn net.Conn) peekResult {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return peekPending
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return peekClosed
	}
	res := peekPending
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			res = peekEmpty
		case err != nil, n == 0:
			res = peekClosed
		}
		return true // never wait for readability
	})
	if err != nil {
		return peekClosed
	}
	return res
}
