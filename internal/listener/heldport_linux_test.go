package listener

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestHeldPortRefusesUntilListening: a held port is bound (its address is
// known and taken) but refuses connections until Listen, then accepts.
func TestHeldPortRefusesUntilListening(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", ":0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			held, err := holdPort(addr)
			if err != nil {
				if addr == "[::1]:0" {
					t.Skipf("no IPv6 loopback: %v", err)
				}
				t.Fatal(err)
			}
			port := held.Addr().(*net.TCPAddr).Port
			if port == 0 {
				t.Fatal("held port has no port number")
			}
			dialAddr := held.Addr().String()
			if addr == ":0" {
				dialAddr = net.JoinHostPort("127.0.0.1", itoa(port)) // [::] takes IPv4 too
			}
			if other, err := net.Listen("tcp", dialAddr); err == nil {
				other.Close()
				t.Fatal("the held port could be bound again")
			}
			if c, err := net.DialTimeout("tcp", dialAddr, 5*time.Second); err == nil {
				c.Close()
				t.Fatal("a held port accepted a connection")
			} else if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("dial a held port: %v, want connection refused", err)
			}
			ln, err := held.Listen()
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if ln.Addr().(*net.TCPAddr).Port != port {
				t.Fatalf("listening on %v, held %v", ln.Addr(), held.Addr())
			}
			accepted := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					c.Close()
				}
				accepted <- err
			}()
			c, err := net.DialTimeout("tcp", dialAddr, 5*time.Second)
			if err != nil {
				t.Fatalf("dial after Listen: %v", err)
			}
			c.Close()
			if err := <-accepted; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func itoa(n int) string { return (&net.TCPAddr{Port: n}).String()[1:] }

// TestHeldPortRebindsWhileOldConnectionsClose: a restarted proxy holds its
// bootstrap port again while connections the previous one accepted on it
// are still open or closing, as net.Listen allows.
func TestHeldPortRebindsWhileOldConnectionsClose(t *testing.T) {
	held, err := holdPort("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := held.Listen()
	if err != nil {
		t.Fatal(err)
	}
	client, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	ln.Close() // the old proxy stops listening; its connection lingers

	again, err := holdPort(ln.Addr().String())
	if err != nil {
		t.Fatalf("hold the port again: %v", err)
	}
	again.Close()
}
