//go:build !linux

package listener

import "net"

// rawWriter: without Linux's writev every answer goes through the writer
// goroutine, which may wait on the socket.
type rawWriter struct{}

func (w *rawWriter) init(net.Conn)                      {}
func (w *rawWriter) ok() bool                           { return false }
func (w *rawWriter) tryWrite(*net.Buffers) (int, error) { return 0, nil }
