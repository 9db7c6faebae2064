package bench

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
)

// relay is the blind TCP relay the proxy is measured against: one listener
// per broker, bytes copied both ways with io.Copy, nothing parsed or
// rewritten. It is the floor any proxy pays for the extra hop.
type relay struct {
	lns   []net.Listener
	addrs map[string]string // upstream broker address → relay address

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// newRelay listens on loopback once per upstream address.
func newRelay(upstreams []string) (*relay, error) {
	r := &relay{addrs: map[string]string{}, conns: map[net.Conn]struct{}{}}
	for _, up := range upstreams {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			r.close()
			return nil, err
		}
		r.lns = append(r.lns, ln)
		r.addrs[up] = ln.Addr().String()
		r.wg.Add(1)
		go r.serve(ln, up)
	}
	return r, nil
}

func (r *relay) serve(ln net.Listener, upstream string) {
	defer r.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.pipe(c, upstream)
		}()
	}
}

func (r *relay) track(c net.Conn, on bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil {
		return false
	}
	if on {
		r.conns[c] = struct{}{}
	} else {
		delete(r.conns, c)
	}
	return true
}

func (r *relay) pipe(client net.Conn, upstream string) {
	defer client.Close()
	up, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer up.Close()
	if !r.track(client, true) || !r.track(up, true) {
		return
	}
	defer r.track(client, false)
	defer r.track(up, false)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(up, client)
		_ = up.(*net.TCPConn).CloseWrite()
	}()
	_, _ = io.Copy(client, up)
	_ = client.(*net.TCPConn).CloseWrite()
	<-done
}

// close stops the listeners and every relayed connection.
func (r *relay) close() {
	for _, ln := range r.lns {
		_ = ln.Close()
	}
	r.mu.Lock()
	conns := r.conns
	r.conns = nil
	r.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
	r.wg.Wait()
}

// dialVia returns a kgo dial function that sends each broker address
// through m (addresses not in m are dialed as they are), with TLS to the
// broker named when tlsCfg is set.
func dialVia(m map[string]string, tlsCfg *tls.Config) func(ctx context.Context, network, host string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, host string) (net.Conn, error) {
		addr := host
		if to, ok := m[host]; ok {
			addr = to
		}
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil || tlsCfg == nil {
			return conn, err
		}
		cfg := tlsCfg.Clone()
		if cfg.ServerName, _, err = net.SplitHostPort(host); err != nil {
			_ = conn.Close()
			return nil, err
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		return tc, nil
	}
}
