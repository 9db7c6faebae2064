//go:build !linux

package listener

import "net"

// Elsewhere the port listens at once; until ready, a client is accepted and
// reset (Server.refusal).
type listeningPort struct{ net.Listener }

func holdPort(addr string) (heldPort, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return listeningPort{ln}, nil
}

func (p listeningPort) Listen() (net.Listener, error) { return p.Listener, nil }
