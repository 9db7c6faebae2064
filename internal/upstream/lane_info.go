package upstream

// LaneInfo is what a lane can say about itself to an operator.
type LaneInfo struct {
	Upstream string // the broker address
	// Pending are requests sent or queued that await an answer; Acks0 are
	// acks=0 produces that no answer followed yet.
	Pending, Acks0 int
	Closed         bool
}

// Addr is the broker address the lane's connection was made to.
func (l *Lane[O]) Addr() string { return l.addr }

// Info reads the lane's state; it takes the lane's lock briefly and is meant
// for an occasional look, not for the forward path.
func (l *Lane[O]) Info() LaneInfo {
	addr := l.conn.RemoteAddr().String()
	l.mu.Lock()
	defer l.mu.Unlock()
	return LaneInfo{Upstream: addr, Pending: len(l.pending) - l.head, Acks0: l.acks0.unconfirmed(), Closed: l.closed}
}
