package listener_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/loopback"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
	"github.com/kproxy/kproxy/internal/router"
	"github.com/kproxy/kproxy/internal/upstream"
)

// sittingBroker answers what fakeBroker answers (Metadata, Heartbeat and
// Fetch among them) at once and sits on every other known key, so that
// whatever a lane gets after one of those waits behind it. It records
// nothing and closes each connection when the proxy does, so it can serve
// tens of thousands.
func sittingBroker(t *testing.T) *fakeBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBroker{ln: ln, protocol: router.NewProtocol()}
	var conns sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		conns.Wait()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				b.sit(c)
			}()
		}
	}()
	return b
}

func (b *fakeBroker) sit(c net.Conn) {
	for {
		var size [4]byte
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		frame := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(c, frame); err != nil {
			return
		}
		q, err := router.NewProtocol().ParseRequest(frame)
		if err != nil {
			return
		}
		if _, err := c.Write(b.answer(&q)); err != nil {
			return
		}
	}
}

// pipeline is what each killed session sends in one write, on two lanes:
// an OffsetFetch the broker never answers, then Heartbeats (padded to
// 4 KiB, which the proxy forwards unread) that queue behind it on the
// coordination lane, and Metadata requests, answered at once and
// rewritten, whose answers wait in the session's queue behind the
// OffsetFetch's. So a session dies with frames queued on a lane, frames
// being written, answers held and rewrites under way. No request follows
// one its barriers make it wait for.
func pipeline() []byte {
	reqs := []kmsg.Request{kmsg.NewPtrOffsetFetchRequest()}
	for range 10 {
		reqs = append(reqs, kmsg.NewPtrHeartbeatRequest(), kmsg.NewPtrMetadataRequest())
	}
	var out []byte
	for i, req := range reqs {
		frame := upstream.AppendRequest(nil, req, int32(i+1), "killed")
		if req.Key() == int16(kmsg.Heartbeat) {
			frame = append(frame, make([]byte, 4<<10-len(frame))...)
			binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
		}
		out = append(out, frame...)
	}
	return out
}

// killSessions opens n client sessions, at most parallel at a time, each
// pipelining frames and hanging up at once: half close, half reset. A
// session the proxy refuses counts as killed too.
func killSessions(addr string, n, parallel int, frames []byte) (refused int64) {
	var wg sync.WaitGroup
	var refusals atomic.Int64
	next := atomic.Int64{}
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					refusals.Add(1)
					continue
				}
				if _, err := c.Write(frames); err != nil {
					refusals.Add(1)
				}
				if i%2 == 0 {
					_ = c.(*net.TCPConn).SetLinger(0) // reset
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	return refusals.Load()
}

// killEnv is the proxy in front of a sittingBroker, holding budget bytes
// for its clients.
func killEnv(t *testing.T, budget int) *proxytest.Env {
	t.Helper()
	b := sittingBroker(t)
	cfg := loopback.Config([]string{b.addr()})
	cfg.Limits.MaxBufferedBytes, cfg.Limits.MaxFrameBytes = budget, min(budget/4, cfg.Limits.MaxFrameBytes)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return proxytest.StartProxy(t, cfg, zap.NewNop())
}

// awaitNothingHeld waits, bounded, for every session to be gone and every
// byte of limits.max_buffered_bytes back.
func awaitNothingHeld(t *testing.T, env *proxytest.Env) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sessions, held := testutil.ToFloat64(env.Metrics.ClientConnections), env.Proxy.BufferedForTest()
		if sessions == 0 && held == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v sessions open and %d bytes of limits.max_buffered_bytes held (gauge %v), want 0 and 0",
				sessions, held, testutil.ToFloat64(env.Metrics.BufferedBytes))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sessionKills is how many sessions each test kills: 10,000, or 2,000
// under the race detector, which makes each one several times dearer.
func sessionKills() int {
	if raceDetector {
		return 2_000
	}
	return 10_000
}

// TestKilledSessionsPayBackTheBudget kills sessions mid-pipeline (10,000
// without the race detector): every byte charged for them comes back and
// no session is left behind.
func TestKilledSessionsPayBackTheBudget(t *testing.T) {
	env := killEnv(t, config.Defaults().Limits.MaxBufferedBytes)
	start := time.Now()
	refused := killSessions(env.Bootstrap(), sessionKills(), 16, pipeline())
	t.Logf("%d sessions killed in %v, %d refused or reset before their frames were written", sessionKills(), time.Since(start), refused)
	awaitNothingHeld(t, env)
	if got := testutil.ToFloat64(env.Metrics.BufferedBytes); got != 0 {
		t.Errorf("kproxy_buffered_bytes %v with nothing held, want 0", got)
	}
}

// TestKilledSessionsDoNotWedgeASmallBudget: with a 1 MiB budget, sessions
// killed mid-pipeline leave it whole, so a client that comes after them is
// answered, even one whose request takes a 64 KiB buffer (a Metadata
// request naming 2,000 topics): the bytes the killed sessions held come
// back, not only what their readers could still squeeze in.
func TestKilledSessionsDoNotWedgeASmallBudget(t *testing.T) {
	env := killEnv(t, 1<<20)
	killSessions(env.Bootstrap(), 1_000, 16, pipeline()) // leaking, a few hundred filled it
	c := dialRaw(t, env.Bootstrap(), "after")
	_ = c.Conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := kmsg.NewPtrMetadataRequest()
	for i := range 2000 {
		topic := kmsg.NewMetadataRequestTopic()
		topic.Topic = kmsg.StringPtr(fmt.Sprintf("topic-with-a-long-name-%05d", i))
		req.Topics = append(req.Topics, topic)
	}
	if _, err := c.Send(req); err != nil {
		t.Fatalf("a client after the killed sessions: %v", err)
	}
	if _, err := c.Read(); err != nil {
		t.Fatalf("a client after the killed sessions got no answer: %v", err)
	}
	c.Close()
	awaitNothingHeld(t, env)
}

// TestKilledSplicesPayBackTheBudget: sessions killed while the records of a
// large Produce move from their socket to the broker's (tail.go), half of
// them before the frame's last byte, pay back the frame's first bytes, the
// only part of it charged.
func TestKilledSplicesPayBackTheBudget(t *testing.T) {
	env := killEnv(t, config.Defaults().Limits.MaxBufferedBytes)
	frame := upstream.AppendRequest(nil, rawclient.ProduceRequest("t", 0, 1, make([]byte, 256<<10)), 1, "killed")
	killSessions(env.Bootstrap(), 250, 8, frame[:len(frame)/2])
	killSessions(env.Bootstrap(), 250, 8, frame) // whole, and never answered
	awaitNothingHeld(t, env)
}
