//go:build !linux

package upstream

import "net"

// sendRoom: without Linux's SIOCOUTQ nothing is promised; a lane splices
// only while it has nothing in flight.
type sendRoom struct{}

func (r *sendRoom) init(net.Conn)      {}
func (r *sendRoom) takes(n int64) bool { return false }
