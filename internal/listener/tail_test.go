package listener_test

import (
	"bytes"
	"crypto/rand"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// Large Produce frames from a plain TCP client move to the broker with
// splice(2) once their routing fields are read (tail.go).

func randomValue(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// TestLargeProduceFramesArriveIntact: acks=0 Produce frames of many sizes,
// written back to back on one connection, reach the broker byte for byte
// and in order: spliced when the lane's writer is free, read whole when it
// is busy with the frames before.
func TestLargeProduceFramesArriveIntact(t *testing.T) {
	b, env := startOnFakeBroker(t, config.UnknownAPIsHide, nil)
	c := dialRaw(t, env.Bootstrap(), "big-producer")
	sizes := []int{3 << 20, 1 << 10, 1 << 20, 64 << 10, 70 << 10, 10, 2 << 20, 300 << 10, 5 << 20}
	var all []byte
	var want [][]byte
	for i, n := range sizes {
		frame := rawclient.EncodeRequest(rawclient.ProduceRequest("t", 0, 0, randomValue(n)), int32(i+1), c.ClientID)
		want = append(want, frame)
		all = append(all, frame...)
	}
	go func() { _, _ = c.Conn.Write(all) }()
	produced := func() []fakeRequest {
		var got []fakeRequest
		for _, r := range b.requests() {
			if r.key == int16(kmsg.Produce) {
				got = append(got, r)
			}
		}
		return got
	}
	waitFor(t, "every frame at the broker", func() bool { return len(produced()) >= len(sizes) })
	got := produced()
	if len(got) != len(want) {
		t.Fatalf("%d Produce frames at the broker, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].frame, want[i]) {
			t.Fatalf("frame %d (%d bytes) differs at the broker", i, len(want[i]))
		}
		if got[i].conn != got[0].conn {
			t.Fatalf("frame %d came on another upstream connection", i)
		}
	}
	metadataWorks(t, c) // the session goes on
}

// TestLargeProduceSplicedNotBuffered: a large acks=1 Produce is answered,
// its record reads back whole, and the session never buffered more than the
// frame's first bytes.
func TestLargeProduceSplicedNotBuffered(t *testing.T) {
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")}})
	_, addr := leaderAddrs(t, env, "t")
	c := dialRaw(t, addr, "big-producer")
	value := randomValue(900 << 10)
	if _, err := c.Send(rawclient.ProduceRequest("t", 0, 1, value)); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Msg.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("produce error code %d", code)
	}
	if peak := env.Proxy.BufferedPeakForTest(); peak > 128<<10 {
		t.Errorf("peak buffered %d bytes for a %d-byte record, want the frame's first 64 KiB at most", peak, len(value))
	}
	if _, err := c.Send(rawclient.FetchRequest("t", 0, 0)); err != nil {
		t.Fatal(err)
	}
	fr, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	recs := fr.Msg.(*kmsg.FetchResponse).Topics[0].Partitions[0].RecordBatches
	var batch kmsg.RecordBatch
	if err := batch.ReadFrom(recs); err != nil {
		t.Fatal(err)
	}
	rec := kmsg.Record{}
	if err := rec.ReadFrom(batch.Records); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rec.Value, value) {
		t.Fatal("the record read back differs")
	}
}

// TestTrickledLargeProduceNotAllocated: a client that trickles a large
// Produce frame costs the budget the frame's first 64 KiB at most, never
// its declared size, and the request still goes through.
func TestTrickledLargeProduceNotAllocated(t *testing.T) {
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")}})
	_, addr := leaderAddrs(t, env, "t")
	c := dialRaw(t, addr, "trickler")
	frame := rawclient.EncodeRequest(rawclient.ProduceRequest("t", 0, 1, randomValue(900<<10)), 1, c.ClientID)
	c.Conn.(*net.TCPConn).SetNoDelay(true)
	const chunk = 32 << 10
	for off := 0; off < len(frame); off += chunk {
		if _, err := c.Conn.Write(frame[off:min(off+chunk, len(frame))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
		if used := env.Proxy.BufferedForTest(); used > 64<<10 {
			t.Fatalf("%d bytes buffered with %d of %d sent", used, off+chunk, len(frame))
		}
	}
	var resp kmsg.ProduceResponse
	raw, err := readRawFrame(c.Conn)
	if err != nil {
		t.Fatal(err)
	}
	resp.SetVersion(7)
	if err := resp.ReadFrom(raw[8:]); err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("produce error code %d", code)
	}
	if peak := env.Proxy.BufferedPeakForTest(); peak > 128<<10 {
		t.Errorf("peak buffered %d bytes", peak)
	}
}

// TestMemberHeartbeatNotHeldBehindSplice: a client that heartbeats over its
// produce socket pipelines a Produce the broker takes 2s over, then two
// large Produce frames, then a Heartbeat. The broker does not read that
// lane while it works; kproxy must still read on and forward the
// Heartbeat at once, not splice the large frames at the broker's pace
// (that is the head-of-line blocking it removes). A session that never
// sent a member's request may wait: its Produce frames splice at the
// broker's pace, as on a direct connection.
func TestMemberHeartbeatNotHeldBehindSplice(t *testing.T) {
	const busy = 3 * time.Second
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")},
		Config: func(c *config.Config) { c.Limits.MaxBufferedBytes = 1 << 30 }}) // a 64 MiB share holds both frames
	var mu sync.Mutex
	var heartbeats []time.Time
	env.Cluster.ControlKey(int16(kmsg.Heartbeat), func(kmsg.Request) (kmsg.Response, error, bool) {
		env.Cluster.KeepControl()
		mu.Lock()
		heartbeats = append(heartbeats, time.Now())
		mu.Unlock()
		return nil, nil, false
	})
	var slept bool
	var awake time.Time // when the broker finished the first Produce
	env.Cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		env.Cluster.KeepControl()
		if !slept {
			slept = true
			env.Cluster.SleepControl(func() { time.Sleep(busy) })
			mu.Lock()
			awake = time.Now()
			mu.Unlock()
		}
		return nil, nil, false
	})
	_, addr := leaderAddrs(t, env, "t")
	c := dialRaw(t, addr, "legacy-member")
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID = "g", "m"
	if _, err := c.Send(hb); err != nil { // a group member from now on
		t.Fatal(err)
	}
	if _, err := c.Read(); err != nil {
		t.Fatal(err)
	}
	var all []byte
	for i, n := range []int{1 << 10, 8 << 20, 24 << 20} {
		all = append(all, rawclient.EncodeRequest(rawclient.ProduceRequest("t", 0, 1, randomValue(n)), int32(10+i), c.ClientID)...)
	}
	all = append(all, rawclient.EncodeRequest(hb, 20, c.ClientID)...)
	sent := time.Now()
	go func() { _, _ = c.Conn.Write(all) }()
	waitFor(t, "the second Heartbeat at the broker", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(heartbeats) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	if !awake.IsZero() && !heartbeats[1].Before(awake) {
		t.Fatalf("the Heartbeat reached the broker %v after it was sent, once the broker had finished the Produce it was busy with for %v: it waited behind Produce frames the broker was not reading",
			heartbeats[1].Sub(sent), busy)
	}
}

// TestTrickledSpliceIdleTimeout: a client that sends the head of a large
// Produce and then trickles its records a byte at a time is as idle as one
// trickling a frame read whole: limits.client_idle_timeout closes it,
// although the frame's answer is already owed while its tail is spliced.
func TestTrickledSpliceIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")},
		Config: func(c *config.Config) { c.Limits.ClientIdleTimeout = idle }})
	_, addr := leaderAddrs(t, env, "t")
	c := dialRaw(t, addr, "trickler")
	frame := rawclient.EncodeRequest(rawclient.ProduceRequest("t", 0, 1, randomValue(900<<10)), 1, c.ClientID)
	if _, err := c.Conn.Write(frame[:80<<10]); err != nil { // past the head: the rest is a tail
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for off := 80 << 10; off < len(frame); off++ {
			select {
			case <-stop:
				return
			case <-time.After(idle / 6):
			}
			if _, err := c.Conn.Write(frame[off : off+1]); err != nil {
				return
			}
		}
	}()
	waitFor(t, "the trickler closed as client_idle_timeout", func() bool {
		return testutil.ToFloat64(env.Metrics.SessionCloses.WithLabelValues("client_idle_timeout")) == 1
	})
}

// TestSpliceCutByClientBlamesClient: a client that closes in the middle of
// a large Produce whose tail is being spliced to the broker, cleanly (FIN)
// or with a reset, ends its session for its own fault, never as
// upstream_failed, however the session's reader and the lane's race to
// report it. The lane's connection, half a frame written, is closed: no
// later session takes it from the pool.
func TestSpliceCutByClientBlamesClient(t *testing.T) {
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")}})
	_, addr := leaderAddrs(t, env, "t")
	frame := rawclient.EncodeRequest(rawclient.ProduceRequest("t", 0, 1, randomValue(1<<20)), 1, "cutter")
	ended := func() float64 {
		return closes(env, "bad_frame") + closes(env, "client_closed") + closes(env, "upstream_failed")
	}
	const rounds = 100
	for i := range rounds {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(frame[:len(frame)/2]); err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			_ = c.(*net.TCPConn).SetLinger(0) // a reset
		}
		c.Close()
		waitFor(t, "the session closed", func() bool { return ended() == float64(i+1) })
	}
	if got := closes(env, "upstream_failed"); got != 0 {
		t.Errorf("%v of %d sessions cut by their client blamed on the broker (bad_frame %v, client_closed %v)",
			got, rounds, closes(env, "bad_frame"), closes(env, "client_closed"))
	}
	if got := closes(env, "bad_frame"); got < rounds/2 {
		t.Errorf("%v sessions closed as bad_frame, want every one of the %d closed cleanly mid-frame (a truncated frame)", got, rounds/2)
	}
	if got := testutil.ToFloat64(env.Metrics.PoolHits); got != 0 {
		t.Errorf("%v lanes took a pooled connection: a half-written one was pooled", got)
	}
}

// TestSpliceCutByBrokerBlamesBroker: a broker that resets its connection
// in the middle of a spliced Produce, while the client is still sending
// it, fails the session as upstream_failed, never as the client's fault.
func TestSpliceCutByBrokerBlamesBroker(t *testing.T) {
	b, env := startOnFakeBroker(t, config.UnknownAPIsHide, nil)
	b.resetAfter.Store(128 << 10)
	frame := rawclient.EncodeRequest(rawclient.ProduceRequest("t", 0, 1, randomValue(4<<20)), 1, "producer")
	const rounds = 20
	for i := range rounds {
		c := dialRaw(t, env.Bootstrap(), "producer")
		go func() { _, _ = c.Conn.Write(frame) }()
		expectClosed(t, c.Conn)
		waitFor(t, "the session closed", func() bool {
			return closes(env, "upstream_failed")+closes(env, "client_closed")+closes(env, "bad_frame") == float64(i+1)
		})
	}
	if got := closes(env, "upstream_failed"); got != rounds {
		t.Errorf("%v of %d sessions whose broker reset mid-frame blamed on the broker (client_closed %v, bad_frame %v)",
			got, rounds, closes(env, "client_closed"), closes(env, "bad_frame"))
	}
}
