// Package peek looks at a TCP socket without blocking and without
// consuming a byte: whether its peer has closed it or sent something. A
// read with a deadline cannot tell (Go fails a read past its deadline
// before asking the socket), so this asks the descriptor itself.
package peek

import (
	"crypto/tls"
	"net"
)

// State is what a peek saw.
type State uint8

const (
	// Quiet: open, nothing to read.
	Quiet State = iota
	// Data: open, with bytes waiting to be read.
	Data
	// Closed: the peer closed or reset the connection (err says which,
	// when it was an error), or the connection is closed here.
	Closed
	// Unknown: this platform cannot peek.
	Unknown
)

// At peeks at conn's socket; under TLS, at the TCP socket below it, where a
// closing alert or a FIN shows too.
func At(conn net.Conn) (State, error) {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	return socket(conn)
}
