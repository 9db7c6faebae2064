package listener_test

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/proxytest"
	"github.com/kproxy/kproxy/internal/rawclient"
)

// Hostile and broken clients against the session core (README,
// Reliability). Each test is one of the measured failures it fixes.

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// readFrame reads one answer frame, size prefix and all.
func readFrame(c net.Conn) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err := io.ReadFull(c, b)
	return b, err
}

func closes(env *proxytest.Env, reason string) float64 {
	return testutil.ToFloat64(env.Metrics.SessionCloses.WithLabelValues(reason))
}

// slowBroker makes every request of key take d at the broker, one at a
// time per connection as a broker works. Sleeps end before the cluster
// closes (a control function still sleeping then never returns).
func slowBroker(t *testing.T, env *proxytest.Env, key kmsg.Key, d time.Duration) {
	var (
		mu       sync.Mutex
		stopped  bool
		sleeping sync.WaitGroup
	)
	t.Cleanup(func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		sleeping.Wait()
	})
	env.Cluster.ControlKey(int16(key), func(kmsg.Request) (kmsg.Response, error, bool) {
		env.Cluster.KeepControl()
		mu.Lock()
		if stopped {
			mu.Unlock()
			return nil, nil, false
		}
		sleeping.Add(1)
		mu.Unlock()
		defer sleeping.Done()
		env.Cluster.SleepControl(func() { time.Sleep(d) })
		return nil, nil, false
	})
}

// Case 1: a size prefix of 100 MB and an 8-byte header, on 20 connections,
// 3 rounds. A declared size is never allocated: each reader holds its
// first 64 KiB until more bytes come.
func TestHostileDeclaredSizeNotAllocated(t *testing.T) {
	env := proxytest.Start(t, proxytest.Options{Brokers: 1})
	base := heapInUse()
	const conns = 20
	var peakHeap uint64
	for range 3 {
		var cs []net.Conn
		for range conns {
			c, err := net.Dial("tcp", env.Bootstrap())
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
			frame := binary.BigEndian.AppendUint32(nil, 100_000_000)
			frame = binary.BigEndian.AppendUint16(frame, uint16(kmsg.ApiVersions))
			frame = append(frame, 0, 0, 0, 0, 0, 1) // version 0, correlation id 1
			if _, err := c.Write(frame); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "every reader holding its first chunk", func() bool { return env.Proxy.BufferedForTest() == conns*64<<10 })
		peakHeap = max(peakHeap, heapInUse())
		for _, c := range cs {
			c.Close()
		}
		waitFor(t, "every byte back", func() bool { return env.Proxy.BufferedForTest() == 0 })
	}
	if peak := env.Proxy.BufferedPeakForTest(); peak > conns*64<<10 {
		t.Errorf("peak buffered %d bytes, want at most %d", peak, conns*64<<10)
	}
	if grew := int64(peakHeap) - int64(base); grew > 64<<20 {
		t.Errorf("heap in use grew by %d MiB", grew>>20)
	}
	if got := closes(env, "bad_frame"); got != 3*conns {
		t.Errorf("%v sessions closed as bad_frame (truncated), want %d", got, 3*conns)
	}
}

// seedBig stores one record of n bytes in partition 0 of topic: a Fetch
// of it is a large answer that costs the broker nothing to make.
func seedBig(t *testing.T, addr, topic string, n int) {
	t.Helper()
	c := dialRaw(t, addr, "seeder")
	if _, err := c.Send(rawclient.ProduceRequest(topic, 0, 1, make([]byte, n))); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// Case 2, scaled down: hoarders pipeline a long-poll Fetch and many large
// answers and read nothing. They are held to their share; a neighbour's
// round trips go on meanwhile; every held answer arrives, in order, once
// the hoarders read.
func TestHostileHoardersThrottledNotNeighbours(t *testing.T) {
	const limit = 16 << 20 // share: 1 MiB
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t", "big")},
		Config: func(c *config.Config) { c.Limits.MaxFrameBytes, c.Limits.MaxBufferedBytes = 1<<20, limit }})
	_, addr := leaderAddrs(t, env, "t")
	seedBig(t, addr, "big", 256<<10)
	const hoarders, bigs = 5, 60 // 15 MiB each
	var cs []*rawclient.Conn
	for range hoarders {
		c := dialRaw(t, addr, "hoarder")
		_ = c.Conn.(*net.TCPConn).SetReadBuffer(64 << 10) // the kernel holds little for it
		if _, err := c.Send(rawclient.FetchRequest("t", 0, 500*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		for range bigs {
			if _, err := c.Send(rawclient.FetchRequest("big", 0, 0)); err != nil {
				t.Fatal(err)
			}
		}
		cs = append(cs, c)
	}
	hits := env.Metrics.LimitHits.WithLabelValues(metrics.LimitMaxBufferedBytes)
	waitFor(t, "every hoarder throttled", func() bool { return testutil.ToFloat64(hits) >= hoarders })

	neighbour := dialRaw(t, addr, "neighbour")
	for range 3 {
		metadataWorks(t, neighbour)
	}

	for _, c := range cs {
		for want := int32(1); want <= bigs+1; want++ {
			resp, err := c.Read()
			if err != nil {
				t.Fatalf("answer %d: %v", want, err)
			}
			if resp.CorrelationID != want {
				t.Fatalf("answer %d arrived as %d", want, resp.CorrelationID)
			}
		}
	}
	if peak := env.Proxy.BufferedPeakForTest(); peak > limit {
		t.Errorf("peak buffered %d bytes, past the limit %d", peak, limit)
	}
	for _, c := range cs {
		c.Close()
	}
	neighbour.Close()
	waitFor(t, "every byte back", func() bool { return env.Proxy.BufferedForTest() == 0 })
}

// Case 9: pipelined 1 MiB produces to a slow broker are bounded by bytes,
// not by the 256 requests a session may have in flight.
func TestHostileLargeProducesBoundedByBytes(t *testing.T) {
	const limit = 32 << 20 // share: 2 MiB
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")},
		Config: func(c *config.Config) { c.Limits.MaxFrameBytes, c.Limits.MaxBufferedBytes = 2<<20, limit }})
	_, addr := leaderAddrs(t, env, "t")
	slowBroker(t, env, kmsg.Produce, 20*time.Millisecond)
	value := make([]byte, 1<<20)
	const conns, produces = 2, 30
	var wg sync.WaitGroup
	errs := make(chan error, 2*conns)
	for range conns {
		c := dialRaw(t, addr, "producer")
		wg.Add(2)
		go func() { // the reader: answers come while requests are still written
			defer wg.Done()
			for range produces {
				if _, err := readFrame(c.Conn); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := range produces {
				if _, err := c.Conn.Write(rawclient.EncodeRequest(rawclient.ProduceRequest("t", 0, 1, value), int32(i), "producer")); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Each session: its share, plus the frame it may grow past it, plus
	// one frame's growth step.
	if peak, bound := env.Proxy.BufferedPeakForTest(), int64(conns*(limit/16+2*(2<<20))); peak > bound {
		t.Errorf("peak buffered %d bytes, want at most %d", peak, bound)
	}
}

// Case 5: a client that stops reading blocks nothing: its session closes
// as client_write_timeout, its lanes close, and another session works on.
func TestHostileClientNotReadingTimesOut(t *testing.T) {
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "big")},
		Config: func(c *config.Config) { c.Limits.ClientWriteTimeout = 300 * time.Millisecond }})
	_, addr := leaderAddrs(t, env, "big")
	seedBig(t, addr, "big", 256<<10)
	c := dialRaw(t, addr, "deaf")
	for range 80 { // 20 MiB of answers: more than socket buffers hold
		if _, err := c.Send(rawclient.FetchRequest("big", 0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	other := dialRaw(t, addr, "other")
	metadataWorks(t, other)
	waitFor(t, "the deaf client closed as client_write_timeout", func() bool { return closes(env, "client_write_timeout") == 1 })
	metadataWorks(t, other)
	other.Close()
	waitFor(t, "lanes closed, bytes back", func() bool {
		return upstreamConnections(t, env) == 0 && env.Proxy.BufferedForTest() == 0
	})
	if got := closes(env, "upstream_stalled"); got != 0 {
		t.Errorf("%v sessions blamed on the broker", got)
	}
}

// Case 7: pipelined requests to a broker that takes its time with each
// are not reset as stalled: a request's clock starts when it reaches the
// head of its lane.
func TestHostilePipelinedSlowProducesNotStalled(t *testing.T) {
	const grace, each = 200 * time.Millisecond, 250 * time.Millisecond
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")},
		Config: func(c *config.Config) { c.Limits.UpstreamAnswerGrace = grace }})
	_, addr := leaderAddrs(t, env, "t")
	slowBroker(t, env, kmsg.Produce, each)
	c := dialRaw(t, addr, "pipeliner")
	const n = 6 // the last waits 6 × 250ms, far past its 300ms timeout plus the grace
	for range n {
		req := rawclient.ProduceRequest("t", 0, 1, []byte("v"))
		req.TimeoutMillis = 300
		if _, err := c.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if _, err := c.Read(); err != nil {
			t.Fatalf("answer %d: %v (closes: upstream_stalled %v)", i+1, err, closes(env, "upstream_stalled"))
		}
	}
}

// B: SyncGroup has no timeout of its own; it waits on the rebalance, so it
// gets the rebalance timeout its member sent in JoinGroup.
func TestHostileSyncGroupGetsRebalanceTimeout(t *testing.T) {
	const grace = 200 * time.Millisecond
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")},
		Config: func(c *config.Config) { c.Limits.UpstreamAnswerGrace = grace }})
	env.Cluster.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.Generation, resp.MemberID, resp.LeaderID = 1, "m", "m"
		return resp, nil, true
	})
	env.Cluster.ControlKey(int16(kmsg.SyncGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		env.Cluster.SleepControl(func() { time.Sleep(3 * grace) }) // the rebalance
		return req.ResponseKind(), nil, true
	})
	c := dialRaw(t, env.Bootstrap(), "member")
	join := kmsg.NewPtrJoinGroupRequest()
	join.SetVersion(3)
	join.Group, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis, join.ProtocolType = "g", 6000, 2000, "consumer"
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.SetVersion(3)
	sync.Group, sync.Generation, sync.MemberID = "g", 1, "m"
	for _, req := range []kmsg.Request{join, sync} {
		if _, err := c.Send(req); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(); err != nil {
			t.Fatalf("%s: %v (closes: upstream_stalled %v)", kmsg.NameForKey(req.Key()), err, closes(env, "upstream_stalled"))
		}
	}
}

// Case 8: a client closed while its reader waits for an in-flight token
// leaves no token, slot or byte behind.
func TestHostileCloseWhileWaitingForTokenLeaksNothing(t *testing.T) {
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")},
		Config: func(c *config.Config) { c.Limits.MaxInflightPerConnection = 4 }})
	_, addr := leaderAddrs(t, env, "t")
	slowBroker(t, env, kmsg.Produce, 50*time.Millisecond)
	inflight := env.Metrics.InflightRequests.WithLabelValues("produce")
	blocked := env.Metrics.LimitHits.WithLabelValues(metrics.LimitMaxInflight)
	for round := range 10 {
		c := dialRaw(t, addr, "impatient")
		for range 8 {
			if _, err := c.Send(rawclient.ProduceRequest("t", 0, 1, []byte("v"))); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the reader waiting for a token", func() bool { return testutil.ToFloat64(blocked) >= float64(round+1) })
		c.Close()
		waitFor(t, "nothing in flight, nothing held", func() bool {
			return testutil.ToFloat64(inflight) == 0 && env.Proxy.BufferedForTest() == 0
		})
	}
	if got := closes(env, "client_write_failed"); got != 0 {
		t.Errorf("%v closes counted as client_write_failed", got)
	}
}

// Case 3: a silent connection and one trickling a frame are closed as
// idle; a client with an answer owed, or with requests, is not.
func TestHostileIdleClientsClosed(t *testing.T) {
	const idle = 300 * time.Millisecond
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Kfake: []kfake.Opt{kfake.SeedTopics(1, "t")},
		Config: func(c *config.Config) { c.Limits.ClientIdleTimeout = idle }})
	_, addr := leaderAddrs(t, env, "t")
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	trickle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer trickle.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		_, _ = trickle.Write(binary.BigEndian.AppendUint32(nil, 100))
		for {
			select {
			case <-stop:
				return
			case <-time.After(idle / 6):
			}
			if _, err := trickle.Write([]byte{0}); err != nil {
				return
			}
		}
	}()
	busy := dialRaw(t, addr, "busy")
	waiting := dialRaw(t, addr, "waiting")
	corr, _ := waiting.Send(rawclient.FetchRequest("t", 0, 3*idle)) // owed for longer than idle
	start := time.Now()
	for time.Since(start) < 3*idle {
		metadataWorks(t, busy)
	}
	metadataWorks(t, busy) // still open after three idle timeouts of requests
	if resp, err := waiting.Read(); err != nil || resp.CorrelationID != corr {
		t.Fatalf("the long poll: %v", err)
	}
	expectClosed(t, silent)
	expectClosed(t, trickle)
	// The busy and waiting clients fall idle too from here on.
	waitFor(t, "the idle closes counted", func() bool { return closes(env, "client_idle_timeout") >= 2 })
}

// Case 4 and C: a request kproxy reads and cannot parse, or a version the
// client was not offered, stops at kproxy; nothing is blamed on the broker.
func TestHostileBadRequestsStopAtProxy(t *testing.T) {
	env := proxytest.Start(t, proxytest.Options{Brokers: 1})
	var upstream sync.Map
	for _, key := range []kmsg.Key{kmsg.Metadata, kmsg.OffsetCommit} {
		env.Cluster.ControlKey(int16(key), func(kmsg.Request) (kmsg.Response, error, bool) {
			env.Cluster.KeepControl()
			upstream.Store(key, true)
			return nil, nil, false
		})
	}
	send := func(frame []byte) net.Conn {
		c, err := net.Dial("tcp", env.Bootstrap())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(frame); err != nil {
			t.Fatal(err)
		}
		return c
	}
	garbage := []byte{0x00, 0x03, 0x00, 0x0c, 0, 0, 0, 7, 0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0x13}
	c := send(binary.BigEndian.AppendUint32(nil, uint32(len(garbage))))
	_, _ = c.Write(garbage)
	expectClosed(t, c)
	c.Close()
	waitFor(t, "bad_frame", func() bool { return closes(env, "bad_frame") == 1 })

	r := dialRaw(t, env.Bootstrap(), "skewed")
	if _, err := r.Send(kmsg.NewPtrApiVersionsRequest()); err != nil {
		t.Fatal(err)
	}
	resp, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	var top int16
	for _, k := range resp.Msg.(*kmsg.ApiVersionsResponse).ApiKeys {
		if k.ApiKey == int16(kmsg.OffsetCommit) {
			top = k.MaxVersion
		}
	}
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.SetVersion(top + 1)
	_, _ = r.Conn.Write(rawclient.EncodeRequest(commit, 2, "skewed"))
	expectClosed(t, r.Conn)
	waitFor(t, "unsupported_version", func() bool { return closes(env, "unsupported_version") == 1 })

	if got := testutil.ToFloat64(env.Metrics.FrameErrors.WithLabelValues("malformed")); got != 1 {
		t.Errorf("malformed frames %v, want 1", got)
	}
	if got := closes(env, "upstream_failed"); got != 0 {
		t.Errorf("%v sessions blamed on the broker", got)
	}
	upstream.Range(func(k, _ any) bool {
		t.Errorf("%v reached the broker", k)
		return true
	})
}

// B: a client that opens a TLS connection and says nothing, and one that
// completes TLS but never authenticates (sasl.mode terminate), are closed
// after listen.handshake_timeout.
func TestHostileHandshakeTimeout(t *testing.T) {
	ca := proxytest.NewCA(t, "proxy-ca")
	_, certFile, keyFile := ca.Issue(t, "kproxy")
	t.Setenv("KPROXY_TEST_HANDSHAKE_PW", "secret")
	env := proxytest.Start(t, proxytest.Options{Brokers: 1, Config: func(c *config.Config) {
		c.Listen.TLS = config.ListenTLS{CertFile: certFile, KeyFile: keyFile}
		c.Listen.SASL = config.ListenSASL{Mode: config.SASLModeTerminate, Mechanisms: []string{config.SASLPlain},
			Users: map[string]string{"app": "env:KPROXY_TEST_HANDSHAKE_PW"}}
		c.Listen.HandshakeTimeout = 300 * time.Millisecond
	}})
	silent, err := net.Dial("tcp", env.Bootstrap())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	expectClosed(t, silent)

	conn, err := tls.Dial("tcp", env.Bootstrap(), &tls.Config{RootCAs: ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := rawclient.Wrap(conn)
	if _, err := c.Send(kmsg.NewPtrApiVersionsRequest()); err != nil { // allowed before authentication
		t.Fatal(err)
	}
	if _, err := c.Read(); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, conn)
	waitFor(t, "two handshake timeouts", func() bool { return closes(env, "handshake_timeout") == 2 })
}
