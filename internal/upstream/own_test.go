package upstream

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
)

// coordinatorBroker answers FindCoordinator v0 with the group's name read
// as a node id, counting the connections it accepts; it closes each
// connection after closeAfter answers (0: never).
func coordinatorBroker(t *testing.T, closeAfter int) (addr string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				for answered := 0; closeAfter == 0 || answered < closeAfter; answered++ {
					var size [4]byte
					if _, err := io.ReadFull(c, size[:]); err != nil {
						return
					}
					frame := make([]byte, binary.BigEndian.Uint32(size[:]))
					if _, err := io.ReadFull(c, frame); err != nil {
						return
					}
					corr := binary.BigEndian.Uint32(frame[4:])
					idLen := int(binary.BigEndian.Uint16(frame[8:]))
					req := kmsg.NewPtrFindCoordinatorRequest()
					if err := req.ReadFrom(frame[10+idLen:]); err != nil {
						return
					}
					resp := kmsg.NewPtrFindCoordinatorResponse()
					node, _ := strconv.Atoi(req.CoordinatorKey)
					resp.NodeID, resp.Host, resp.Port = int32(node), "127.0.0.1", 9092
					out := binary.BigEndian.AppendUint32(make([]byte, 4, 64), corr)
					out = resp.AppendTo(out)
					binary.BigEndian.PutUint32(out, uint32(len(out)-4))
					if _, err := c.Write(out); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), accepted
}

// ownDialer is a dialer of no TLS or SASL whose kept connections close
// at test cleanup.
func ownDialer(t *testing.T) *Dialer {
	t.Helper()
	d, err := NewDialer(config.Upstream{DialTimeout: 5 * time.Second}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// askGroups asks d for the coordinators of groups first to first+n-1 at
// addr, which answers each with the group's number.
func askGroups(t *testing.T, d *Dialer, addr string, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		if node, err := d.FindCoordinator(context.Background(), addr, strconv.Itoa(i)); err != nil || node != int32(i) {
			t.Fatalf("FindCoordinator of group %d: node %d, %v", i, node, err)
		}
	}
}

// TestFindCoordinatorReusesOneConnection: kproxy's own FindCoordinator
// questions to a broker go over one connection it keeps, so that a client
// sending old offset requests for ever new groups costs the broker a
// request each, not a connection (and an authentication) each.
func TestFindCoordinatorReusesOneConnection(t *testing.T) {
	addr, accepted := coordinatorBroker(t, 0)
	askGroups(t, ownDialer(t), addr, 0, 20)
	if n := accepted.Load(); n != 1 {
		t.Fatalf("20 FindCoordinator questions opened %d connections to the broker, want 1", n)
	}
}

// TestFindCoordinatorRedialsAClosedConnection: a kept connection the broker
// closed (idle, or its authentication expired) is dialed again, and the
// question is answered.
func TestFindCoordinatorRedialsAClosedConnection(t *testing.T) {
	addr, accepted := coordinatorBroker(t, 1)
	askGroups(t, ownDialer(t), addr, 0, 3)
	if n := accepted.Load(); n != 3 {
		t.Fatalf("%d connections, want 3: one per answer", n)
	}
}

// TestOwnConnectionRetiredByReload: after a reload replaced the TLS or
// SASL settings, the kept connection carries no question again (it would
// ask as the old identity): the next question dials anew.
func TestOwnConnectionRetiredByReload(t *testing.T) {
	addr, accepted := coordinatorBroker(t, 0)
	d := ownDialer(t)
	askGroups(t, d, addr, 0, 2)
	if err := d.Reconfigure(config.Upstream{DialTimeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	askGroups(t, d, addr, 2, 2)
	if n := accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: one before the reload, one after", n)
	}
}
