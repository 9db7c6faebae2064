package listener

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// boundSocket is a TCP socket bound to its address, not listening.
type boundSocket struct {
	fd   int
	addr *net.TCPAddr
}

func holdPort(addr string) (heldPort, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	family, sa := syscall.AF_INET6, syscall.Sockaddr(nil)
	switch ip4 := ta.IP.To4(); {
	case ip4 != nil && !ta.IP.IsUnspecified():
		family = syscall.AF_INET
		a := &syscall.SockaddrInet4{Port: ta.Port}
		copy(a.Addr[:], ip4)
		sa = a
	case ta.IP == nil || ta.IP.IsUnspecified():
		sa = &syscall.SockaddrInet6{Port: ta.Port} // dual-stack [::], as net.Listen
	default:
		a := &syscall.SockaddrInet6{Port: ta.Port}
		copy(a.Addr[:], ta.IP.To16())
		sa = a
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, syscall.IPPROTO_TCP)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := setupAndBind(fd, family, sa); err != nil {
		_ = syscall.Close(fd)
		return nil, &net.OpError{Op: "listen", Net: "tcp", Addr: ta, Err: err}
	}
	bound, err := syscall.Getsockname(fd)
	if err != nil {
		_ = syscall.Close(fd)
		return nil, os.NewSyscallError("getsockname", err)
	}
	b := &boundSocket{fd: fd, addr: &net.TCPAddr{IP: ta.IP, Port: ta.Port}}
	switch a := bound.(type) {
	case *syscall.SockaddrInet4:
		b.addr = &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *syscall.SockaddrInet6:
		b.addr = &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return b, nil
}

func setupAndBind(fd, family int, sa syscall.Sockaddr) error {
	if a6, ok := sa.(*syscall.SockaddrInet6); ok && family == syscall.AF_INET6 && a6.Addr == [16]byte{} {
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 0) // [::] takes IPv4 too
	}
	// First without SO_REUSEADDR: on Linux a socket that is bound but not
	// listening shares its port with any later one that sets it, so the
	// port would not really be held. Only if the port is busy, try again
	// with it, as net.Listen binds: a restarted proxy rebinds its port
	// while connections of the previous one are in TIME_WAIT.
	err := syscall.Bind(fd, sa)
	if err == syscall.EADDRINUSE {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
			return os.NewSyscallError("setsockopt", err)
		}
		err = syscall.Bind(fd, sa)
	}
	if err != nil {
		return os.NewSyscallError("bind", err)
	}
	return nil
}

func (b *boundSocket) Addr() net.Addr { return b.addr }

func (b *boundSocket) Listen() (net.Listener, error) {
	// Now, as net.Listen has it: the connections accepted inherit it, so
	// that a restarted proxy can bind the port while they close.
	if err := syscall.SetsockoptInt(b.fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		_ = b.Close()
		return nil, os.NewSyscallError("setsockopt", err)
	}
	if err := syscall.Listen(b.fd, syscall.SOMAXCONN); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("listen on %s: %w", b.addr, os.NewSyscallError("listen", err))
	}
	f := os.NewFile(uintptr(b.fd), "bootstrap")
	defer f.Close() // FileListener holds its own copy of the descriptor
	return net.FileListener(f)
}

func (b *boundSocket) Close() error { return syscall.Close(b.fd) }
