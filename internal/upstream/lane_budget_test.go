package upstream

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kproxy/kproxy/internal/bufpool"
)

// heldBytes is a bufpool.Meter that counts the bytes charged to buffers
// not yet back in the pool, as a session's budget account does.
type heldBytes struct{ n atomic.Int64 }

func (m *heldBytes) Release(n int) { m.n.Add(-int64(n)) }

// charged is a request frame from pool charged to m, as a session's reader
// hands it to Send.
func (m *heldBytes) charged(pool *bufpool.Pool, corr int32) *bufpool.Buf {
	b := pool.Get(12)
	copy(b.B, request(corr).B)
	b.Charge(m, 512)
	m.n.Add(512)
	return b
}

// TestLaneEndReturnsEveryFrame: a lane that ends with frames queued for its
// writer, a frame being written and frames parked by a re-authentication
// gives every one of them back to the pool, so the memory budget is paid
// back whichever route ended it.
func TestLaneEndReturnsEveryFrame(t *testing.T) {
	ends := []struct {
		name string
		end  func(l *testLane)
	}{
		{"close", (*testLane).Close},
		{"release while busy", (*testLane).Release},
		{"re-authentication fails", func(l *testLane) { l.failReauth(errors.New("SASL refused")) }},
	}
	for _, e := range ends {
		t.Run(e.name, func(t *testing.T) {
			l, h, broker, _ := laneOverPipe(t, 0)
			pool := l.opts.Pool
			var m heldBytes
			send := func(corr int32) {
				if err := l.Send(m.charged(pool, corr), corr, true, corr); err != nil {
					t.Errorf("send %d: %v", corr, err)
				}
			}
			go send(1) // written by Send itself: a net.Pipe write waits for the broker
			readRequest(t, broker)
			send(2) // the writer takes it and blocks: the broker reads no more
			eventually(t, func() bool {
				l.mu.Lock()
				defer l.mu.Unlock()
				return l.writing && len(l.queue) == 0
			})
			send(3)
			send(4) // queued behind the write under way
			l.mu.Lock()
			l.reauth = &reauthState[owner]{holding: true}
			l.mu.Unlock()
			send(5)
			send(6) // parked until the re-authentication is done
			l.mu.Lock()
			queued, parked := len(l.queue), len(l.reauth.held)
			l.mu.Unlock()
			if queued != 2 || parked != 2 {
				t.Fatalf("%d frames queued and %d parked, want 2 and 2", queued, parked)
			}

			e.end(l)
			if err := waitDone(t, h); err == nil {
				t.Error("a lane ended with requests in flight reported nothing lost")
			}
			for deadline := time.Now().Add(5 * time.Second); m.n.Load() != 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d bytes still charged to frames the ended lane never gave back", m.n.Load())
				}
			}
		})
	}
}
