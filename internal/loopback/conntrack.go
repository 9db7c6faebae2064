package loopback

import (
	"net"
	"sync"
)

// ConnTracker wraps kfake's listeners (kfake.ListenFn(ct.Listen)) to
// remember every connection each broker accepted, so that a removed
// broker's connections can die with it as a real broker process's would:
// kfake's RemoveNode only closes the listener, and an old connection would
// go on reaching the removed broker, answering NOT_LEADER forever once the
// node id is added back.
type ConnTracker struct {
	mu    sync.Mutex
	conns map[string][]net.Conn // by listen port
}

// Listen is a kfake.ListenFn.
func (ct *ConnTracker) Listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	return &trackedListener{Listener: ln, ct: ct}, nil
}

// Kill closes every connection accepted on addr's port.
func (ct *ConnTracker) Kill(addr string) {
	_, port, _ := net.SplitHostPort(addr)
	ct.mu.Lock()
	conns := ct.conns[port]
	delete(ct.conns, port)
	ct.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

type trackedListener struct {
	net.Listener
	ct *ConnTracker
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.ct.mu.Lock()
	if l.ct.conns == nil {
		l.ct.conns = map[string][]net.Conn{}
	}
	l.ct.conns[port] = append(l.ct.conns[port], c)
	l.ct.mu.Unlock()
	return c, nil
}
