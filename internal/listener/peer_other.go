//go:build !unix

package listener

import "net"

// clientGone: without a peek at the socket, a failed splice is the
// broker's.
func clientGone(net.Conn) bool { return false }
