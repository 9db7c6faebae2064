//go:build !unix

package bufpool

const rawReads = false

func (r *Reader) tryRead(uintptr) bool { panic("unreachable: no raw reads on this platform") }
