package listener

import "net"

// When kproxy closes a client because of the upstream side — no metadata
// yet, the broker unreachable or failing, the connection limit — it resets
// the connection (RST) instead of closing it cleanly (FIN). A client reads
// a clean close before its first answer as "the server rejects me": kgo
// reports an immediate EOF as a TLS or SASL misconfiguration and fails the
// records waiting on it without a retry. A reset is what a client sees when
// a broker dies, and every client retries it. Bad input from the client
// still gets a clean close: retrying would not help.

// resetOnClose reports whether a session closed for reason ends in a reset.
func resetOnClose(reason string) bool {
	switch reason {
	case reasonDialFailed, reasonUpstreamFailed, reasonUpstreamStalled:
		return true
	}
	return false
}

// abort makes the next Close of conn send a reset.
func abort(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
}
