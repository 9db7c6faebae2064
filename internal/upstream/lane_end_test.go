package upstream

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kproxy/kproxy/internal/bufpool"
	"github.com/kproxy/kproxy/internal/metrics"
)

// endingLane is a lane over conn, given back to p on Release (nil: closed),
// closing itself after idle without traffic.
func endingLane(p *Pool, conn net.Conn, idle time.Duration) (*testLane, *fakeHandler, prometheus.Gauge) {
	h := newFakeHandler()
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"})
	opts := testLaneOptions()
	opts.IdleTimeout = idle
	return NewLane[owner](p, conn, "broker:9092", h, opts, gauge), h, gauge
}

// inFlight is a lane over net.Pipe with one request the broker has read
// and not answered.
func inFlight(t *testing.T, idle time.Duration) (*testLane, *fakeHandler, net.Conn, prometheus.Gauge) {
	l, h, broker, gauge := laneOverPipe(t, idle)
	sendAsync(t, l, 1, true)
	readRequest(t, broker)
	return l, h, broker, gauge
}

// failingWrites is a connection whose writes fail while its reads wait.
type failingWrites struct{ net.Conn }

func (failingWrites) Write([]byte) (int, error) { return 0, errors.New("connection reset (test)") }

// bigRequest is a request frame too large for Send to write itself: it
// goes through the writer goroutine.
func bigRequest(corr int32) []byte {
	b := make([]byte, directWriteMax+12)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	binary.BigEndian.PutUint32(b[8:], uint32(corr))
	return b
}

// TestLaneEndsOnce: whichever route ends a lane, LaneDone is reported
// exactly once, after the reader stopped, with nil when nothing was lost
// and the failure otherwise; ending it again reports nothing more.
func TestLaneEndsOnce(t *testing.T) {
	lost := func(want string) func(error) bool {
		return func(err error) bool { return err != nil && strings.Contains(err.Error(), want) }
	}
	is := func(target error) func(error) bool {
		return func(err error) bool { return errors.Is(err, target) }
	}
	nothing := func(err error) bool { return err == nil }
	// writeFails sends frame on a lane whose writes fail.
	writeFails := func(frame []byte) func(t *testing.T) (*testLane, *fakeHandler, prometheus.Gauge) {
		return func(t *testing.T) (*testLane, *fakeHandler, prometheus.Gauge) {
			conn, _ := net.Pipe()
			l, h, gauge := endingLane(nil, failingWrites{conn}, 0)
			if err := l.Send(bufpool.Wrap(frame), 1, true, 1); err != nil {
				t.Fatal(err)
			}
			return l, h, gauge
		}
	}
	// reauthFails fails a re-authentication that parked a request or not.
	reauthFails := func(parked bool) func(t *testing.T) (*testLane, *fakeHandler, prometheus.Gauge) {
		return func(t *testing.T) (*testLane, *fakeHandler, prometheus.Gauge) {
			l, h, _, gauge := laneOverPipe(t, 0)
			l.mu.Lock()
			l.reauth = &reauthState[owner]{holding: true}
			l.mu.Unlock()
			if parked {
				if err := l.Send(request(1), 1, true, 1); err != nil {
					t.Fatal(err)
				}
			}
			l.failReauth(errors.New("SASL refused"))
			return l, h, gauge
		}
	}
	routes := []struct {
		name string
		end  func(t *testing.T) (*testLane, *fakeHandler, prometheus.Gauge)
		want func(error) bool
	}{
		{"close idle", func(t *testing.T) (*testLane, *fakeHandler, prometheus.Gauge) {
			l, h, broker, gauge := inFlight(t, 0)
			answer(t, broker, 1, "x")
			eventually(t, func() bool { return h.answered() == 1 })
			l.Close()
			return l, h, gauge
		}, nothing},
		{"close in flight", func(t *testing.T) (*testLane, *fakeHandler, prometheus.Gauge) {
			l, h, _, gauge := inFlight(t, 0)
			l.Close()
			return l, h, gauge
		}, func(err error) bool { return err != nil }},
		{"release to the pool", func(t *testing.T) (*testLane, *fakeHandler, prometheus.Gauge) {
			p, _ := testPool(t, 4, time.Minute)
			conn, broker := tcpPair(t)
			l, h, gauge := endingLane(p, conn, time.Minute)
			laneRoundTrip(t, l, h, broker, 1)
			l.Release()
			eventually(t, func() bool { return p.Idle("broker:9092") == 1 })
			return l, h, gauge
		}, nothing},
		{"release while busy", func(t *testing.T) (*testLane, *fakeHandler, prometheus.Gauge) {
			p, m := testPool(t, 4, time.Minute)
			conn, broker := tcpPair(t)
			l, h, gauge := endingLane(p, conn, time.Minute)
			if err := l.Send(request(1), 1, true, 1); err != nil {
				t.Fatal(err)
			}
			readRequest(t, broker)
			l.Release()
			if got := discards(m, metrics.PoolDiscardBusy); got != 1 {
				t.Errorf("busy discards %v, want 1", got)
			}
			return l, h, gauge
		}, is(net.ErrClosed)},
		{"idle timeout", func(t *testing.T) (*testLane, *fakeHandler, prometheus.Gauge) {
			l, h, broker, gauge := inFlight(t, 20*time.Millisecond)
			answer(t, broker, 1, "x") // the idle clock starts at the answer
			return l, h, gauge
		}, nothing},
		{"broker EOF mid-answer", func(t *testing.T) (*testLane, *fakeHandler, prometheus.Gauge) {
			l, h, broker, gauge := inFlight(t, 0)
			frame := binary.BigEndian.AppendUint32(nil, 4+10)
			frame = binary.BigEndian.AppendUint32(frame, 1)
			go func() {
				_, _ = broker.Write(append(frame, "ab"...)) // 2 of 10 body bytes
				broker.Close()
			}()
			return l, h, gauge
		}, is(io.ErrUnexpectedEOF)},
		{"Send's write fails", writeFails(request(1).B), lost("write upstream: connection reset")},
		{"the writer's write fails", writeFails(bigRequest(1)), lost("write upstream: connection reset")},
		{"re-authentication fails with requests parked", reauthFails(true), lost("re-authentication failed with 1 requests waiting: SASL refused")},
		{"re-authentication fails idle", reauthFails(false), nothing},
	}
	for _, r := range routes {
		t.Run(r.name, func(t *testing.T) {
			l, h, gauge := r.end(t)
			if err := waitDone(t, h); !r.want(err) {
				t.Fatalf("LaneDone(%v): the wrong verdict", err)
			}
			if got := testutil.ToFloat64(gauge); got != 0 {
				t.Errorf("gauge %v when LaneDone came, want 0: the reader had not finished", got)
			}
			l.Close()
			l.Release()
			if err := l.Send(request(9), 9, true, 9); !errors.Is(err, ErrLaneClosed) {
				t.Errorf("send on an ended lane: %v, want ErrLaneClosed", err)
			}
			time.Sleep(20 * time.Millisecond)
			if n := h.dones.Load(); n != 1 {
				t.Fatalf("LaneDone reported %d times, want once", n)
			}
		})
	}
}
