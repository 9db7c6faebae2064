package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"time"
)

// idle is one path's memory with IdleConns connections open and idle.
type idle struct {
	goMem, rss int64 // growth over the same process with none open
}

// idleMemory opens IdleConns connections on each path, has each do one
// ApiVersions round trip (a client's first request: on kproxy it dials the
// session's first lane), leaves them idle, and measures how much the
// process grew. Every path pays for the client's and the broker's sockets;
// the growth beyond the direct path's is what the relay or kproxy holds.
func (e *env) idleMemory(ctx context.Context, res *Results) error {
	n := e.opts.IdleConns
	if got, err := raiseFileLimit(uint64(4*n + 512)); err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	} else if got < uint64(4*n+512) {
		return fmt.Errorf("RLIMIT_NOFILE is %d: too low for %d idle connections", got, n)
	}
	req := (&rawConn{}).frame(apiVersionsRequest())
	for round := range e.opts.Rounds {
		for i, p := range e.paths {
			if err := ctx.Err(); err != nil {
				return err
			}
			m, err := holdIdle(p.raw, n, req)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", p.name, round+1, err)
			}
			res.idle[i] = append(res.idle[i], m)
		}
	}
	return nil
}

func settle() (goMem, resident uint64) {
	for range 2 {
		runtime.GC()
	}
	return goMemory(), rss()
}

func holdIdle(addr string, n int, req []byte) (idle, error) {
	g0 := runtime.NumGoroutine()
	mem0, rss0 := settle()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
		// Let the far ends notice, so the next path starts from the same
		// baseline.
		for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > g0+8 && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var hdr [8]byte
	var body [1024]byte
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return idle{}, err
		}
		conns = append(conns, c)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(req); err != nil {
			return idle{}, err
		}
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return idle{}, err
		}
		size := int(binary.BigEndian.Uint32(hdr[:4])) - 4
		for size > 0 {
			m, err := c.Read(body[:min(size, len(body))])
			if err != nil {
				return idle{}, err
			}
			size -= m
		}
		_ = c.SetDeadline(time.Time{})
	}
	time.Sleep(100 * time.Millisecond) // the far ends go idle
	mem1, rss1 := settle()
	return idle{goMem: int64(mem1) - int64(mem0), rss: int64(rss1) - int64(rss0)}, nil
}
