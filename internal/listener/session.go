package listener

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/kproxy/kproxy/internal/bridge"
	"github.com/kproxy/kproxy/internal/budget"
	"github.com/kproxy/kproxy/internal/bufpool"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/router"
	"github.com/kproxy/kproxy/internal/upstream"
)

// session serves one client connection: its reader goroutine (run) reads
// and routes requests, each group's lane carries that group's requests to
// the broker, and its answer queue (answers.go) writes the answers back.
type session struct {
	srv    *Server
	pol    *requestPolicy // the server's at the session's accept
	conn   net.Conn
	log    *zap.Logger
	broker int32 // bootstrapNode: any seed
	start  time.Time

	// seed is the upstream a bootstrap session's lanes all dial, chosen on
	// first dial so that every lane reaches the same broker.
	seed string
	// redirects are the group coordinators, other than the session's
	// broker, that old OffsetCommit and OffsetFetch requests go on to
	// (bridge.go); redirects[i] is the lane after the classifier's groups
	// by i. coordinators caches each group's. Reader goroutine only.
	redirects    []string
	coordinators map[string]string

	// acks0Removed is 1 + the version of the latest acks=0 Produce sent as
	// is at a version Kafka 4.0 removed, 0 if none (learnFloors).
	acks0Removed atomic.Int32

	clientSASL clientSASL  // listen.sasl.mode terminate (sasl.go)
	splices    bool        // a plain TCP client: large Produce frames may leave a tail (tail.go)
	tail       frameTail   // reader goroutine only
	view       sessionView // for operators (snapshot.go)

	sem     chan struct{} // one token per request awaiting its answer
	ord     sessionOrdering
	bar     sessionBarriers
	acct    *budget.Account // the session's part of limits.max_buffered_bytes
	answers *answerQueue

	gate requestGate // the request policy, applied (policy.go)

	idleTimeout time.Duration // limits.client_idle_timeout at accept

	// reader goroutine only
	lastRequest  time.Time // a request frame was last read in full
	readDeadline time.Time // the read deadline set on conn

	mu         sync.Mutex
	lanes      []*upstream.Lane[*slot] // by router.Group
	readerDone bool
	draining   bool
	closed     bool

	closedCh chan struct{} // closed as the session's close begins: waits end
	endedCh  chan struct{} // closed once it is done: the session has ended
}

func newSession(server *Server, conn net.Conn, broker int32) *session {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	srv, pol := server, server.policy.Load()
	limits := srv.liveLimits.Load()
	s := &session{
		srv:         srv,
		pol:         pol,
		conn:        conn,
		log:         srv.log.With(zap.String("client", conn.RemoteAddr().String()), zap.Int32("broker", broker)),
		broker:      broker,
		start:       time.Now(),
		sem:         make(chan struct{}, limits.MaxInflightPerConnection),
		idleTimeout: limits.ClientIdleTimeout,
		acct:        srv.budget.NewAccount(),
		lanes:       make([]*upstream.Lane[*slot], pol.classifier.Len()),
		closedCh:    make(chan struct{}),
		endedCh:     make(chan struct{}),
		ord:         sessionOrdering{acc: make([]uint64, 2*pol.classifier.Len())},
		bar:         newSessionBarriers(pol.barriers),
	}
	s.gate = requestGate{pol: pol, ordering: &srv.ordering, ord: &s.ord, brokerAPIs: &srv.brokerAPIs}
	_, s.splices = conn.(*net.TCPConn)
	s.answers = newAnswerQueue(conn, srv.pool, s.acct, pol.instr, s.sem, s.closedCh, limits.ClientWriteTimeout, s, &s.ord, &s.bar,
		func() bool { return srv.ordering.Load().budget > 0 })
	return s
}

// run is the session's reader; it returns when the session ends.
func (s *session) run() {
	defer s.srv.endSession(s)
	s.log.Debug("session opened")
	reason, err := s.read()
	s.mu.Lock()
	s.readerDone = true
	draining := s.draining
	s.mu.Unlock()
	if draining && reason == reasonShutdown {
		s.answers.deliver() // the session closes once every answer is out
	} else {
		s.close(reason, err)
	}
	<-s.endedCh // whoever closes it: a drained session closes from the lane with its last answer
}

// read loops over client frames until the client goes away, sends bad
// input, or the session is closed or drained.
func (s *session) read() (reason string, err error) {
	if reason, err := s.handshake(); err != nil {
		return reason, err
	}
	br := s.srv.pool.NewReader(s.conn, readerSize) // holds no buffer while the client is idle
	s.lastRequest = time.Now()
	var size [4]byte
	for {
		s.armReadDeadline()
		if err := s.readFull(br, size[:]); err != nil {
			return s.readError(err, false)
		}
		n := int32(binary.BigEndian.Uint32(size[:]))
		if reason, err := s.checkSize(size, n); err != nil {
			return reason, err
		}
		frame, err := s.readFrame(br, size, int(n))
		if err != nil {
			return s.readError(err, true)
		}
		s.lastRequest = time.Now()
		s.pol.instr.clientIn.Add(float64(4 + n))
		route := s.route
		if s.clientSASL.unframedToken() {
			route = s.unframedSASL
		}
		if reason, err := route(frame); err != nil {
			return reason, err
		}
		if err := s.skipTail(); err != nil { // route did not send it
			return s.readError(err, true)
		}
		s.tail.owed = false
		s.view.countIn(4 + int(n)) // after route, which learns the client id
	}
}

func (s *session) readError(err error, midFrame bool) (string, error) {
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	var te *timeoutError
	switch {
	case draining && errors.Is(err, os.ErrDeadlineExceeded):
		return reasonShutdown, nil
	case errors.As(err, &te):
		return te.reason, err
	case errors.Is(err, errSessionClosed):
		return reasonClosed, nil
	case midFrame && (err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF)):
		s.pol.instr.frameError(frameTruncated)
		return reasonBadFrame, errors.New("client closed the connection in the middle of a frame (truncated frame)")
	case err == io.EOF, errors.Is(err, net.ErrClosed):
		return reasonClientClosed, nil
	}
	return reasonClientClosed, err
}

// checkSize refuses sizes that cannot start a Kafka request, naming what
// the bytes look like when they are not Kafka at all.
func (s *session) checkSize(prefix [4]byte, n int32) (string, error) {
	limit := s.srv.cfg.Limits.MaxFrameBytes
	var why, kind string
	switch {
	case prefix[0] == 0x16 && prefix[1] == 0x03:
		kind, why = frameTLS, "TLS handshake bytes on a plaintext port"
	case isHTTP(prefix):
		kind, why = frameHTTP, "HTTP request on a Kafka port"
	case n < 0:
		kind, why = frameNegative, fmt.Sprintf("negative frame size %d", n)
	case int(n) > limit:
		kind, why = frameOversized, fmt.Sprintf("frame size %d exceeds limits.max_frame_bytes %d", n, limit)
		s.srv.lim.hit(metrics.LimitMaxFrameBytes, zap.Int32("size", n), zap.Int("max_frame_bytes", limit))
	case s.unauthenticated() && n > maxReceiveBeforeAuth:
		kind, why = frameOversized, fmt.Sprintf("frame size %d from a client not yet authenticated exceeds %d, the most a broker reads before SASL authentication (sasl.server.max.receive.size)", n, maxReceiveBeforeAuth)
	case s.clientSASL.unframedToken(): // a bare SASL token: any bytes
		return "", nil
	case n < 8:
		kind, why = frameTruncated, fmt.Sprintf("frame of %d bytes is too short for a request header", n)
	default:
		return "", nil
	}
	s.pol.instr.frameError(kind)
	return reasonBadFrame, errors.New(why)
}

func isHTTP(p [4]byte) bool {
	switch string(p[:]) {
	case "GET ", "POST", "PUT ", "HEAD", "DELE", "OPTI", "PATC", "PRI ", "CONN":
		return true
	}
	return false
}

// route forwards one request frame, or answers it locally. The session
// takes frame.
func (s *session) route(frame *bufpool.Buf) (string, error) {
	p := s.pol.protocol
	q, _ := p.ParseRequestHead(frame.B[4:], len(frame.B)-4+int(s.tail.lr.N)) // size >= 8 checked; a tail unread
	h := q.RequestHeader
	if s.srv.log.Core().Enabled(zap.DebugLevel) {
		s.log.Debug("request", zap.String("api", p.Name(h.Key)), zap.Int16("api_key", h.Key), zap.Int16("api_version", h.Version),
			zap.Int32("correlation_id", h.CorrelationID), zap.String("group", s.pol.classifier.Name(s.pol.classifier.Classify(h.Key))))
	}
	if s.pol.users != nil {
		if handled, reason, err := s.terminateSASL(frame, &q); handled {
			return reason, err
		}
	}
	s.view.identify(&q, s.pol)
	if !s.ord.decided {
		s.decideOrdering(&q)
	}
	v := s.gate.decide(&q)
	switch {
	case v.err != nil:
		s.srv.pool.Put(frame)
		return v.reason, v.err
	case v.answer != nil:
		s.srv.pool.Put(frame)
		if v.warn != "" {
			s.log.Warn(v.warn, zap.String("api", p.Name(h.Key)), zap.Int16("api_version", h.Version), zap.String("client_id", string(q.ClientID)))
		}
		return s.answerLocally(h, v.answer)
	}
	if v.cappedFrom != 0 {
		s.view.capped.Add(1)
		if s.srv.log.Core().Enabled(zap.DebugLevel) {
			s.log.Debug("fetch wait capped", zap.Int32("correlation_id", h.CorrelationID), zap.Int32("max_wait_ms", v.cappedFrom),
				zap.Int32("capped_ms", s.srv.ordering.Load().budget))
		}
	}
	if !s.awaitBarriers(&q) {
		s.srv.pool.Put(frame)
		return reasonClosed, nil
	}
	lane := v.group
	var bridged *bridge.Exchange
	if v.bridgeTo != 0 {
		if coordinatorBound(h.Key, h.Version) {
			if g, ok := s.redirect(&q); ok {
				lane = g
			}
		}
		var reason string
		var err error
		if frame, bridged, reason, err = s.bridgeUp(frame, &q, v.bridgeTo); frame == nil {
			return reason, err
		}
	}
	var owner *slot
	if v.expect {
		if !s.acquire() {
			s.srv.pool.Put(frame)
			return reasonClosed, nil
		}
		if owner = s.answers.push(h, v.group, lane, nil, v.wait, v.scopes); owner == nil {
			s.srv.pool.Put(frame)
			return reasonClosed, nil
		}
		owner.bridge = bridged
	} else if bridged == nil && h.Version < bridge.Floor(h.Key) {
		s.acks0Removed.Store(int32(h.Version) + 1)
	}
	s.pol.instr.request(h.Key, v.group)
	s.view.countRequest(v.group)
	s.tail.owed = v.expect && s.tail.lr.N > 0
	if err := s.send(lane, frame, h.CorrelationID, v.expect, owner); err != nil {
		return reasonDialFailed, err
	}
	return "", nil
}

// LaneResponse implements upstream.Handler: rewrite if the API carries
// broker addresses, then hand the answer to the answer queue.
func (s *session) LaneResponse(sl *slot, frame *bufpool.Buf) {
	if sl.bridge != nil {
		var ok bool
		if frame, ok = s.bridgeDown(sl, frame); !ok {
			return
		}
	}
	s.pol.instr.throttle(sl.key, sl.version, frame.B[8:])
	if s.pol.rewriter.MayRewrite(sl.key, sl.version) { // never a bridged Fetch, in pieces
		// The rewrite's memory is taken from the budget before it is
		// made: the decoded answer while it lives, and the output, about
		// the input's size, settled after.
		decoding := s.decodeCost(sl.key, len(frame.B))
		reserve := len(frame.B) + rewriteSlack
		if !s.answers.take(sl, decoding+reserve) {
			s.srv.pool.Put(frame)
			return
		}
		out, rewrote, err := s.pol.rewriter.Rewrite(frame.B, sl.key, sl.version, s.srv)
		s.acct.Release(decoding)
		switch {
		case err != nil:
			s.acct.Release(reserve)
			s.srv.pool.Put(frame)
			s.close(reasonRewriteFailed, err)
			return
		case rewrote:
			s.srv.pool.Put(frame)
			frame = bufpool.Wrap(out)
			if c := cap(out); c > reserve {
				s.acct.Force(c - reserve) // the bytes exist already
			} else {
				s.acct.Release(reserve - c)
			}
			frame.Charge(s.acct, cap(out))
			s.pol.instr.rewrite(sl.key)
		default:
			s.acct.Release(reserve)
		}
	}
	if sl.key == router.KeyApiVersions {
		s.gate.noteAdvertised(frame.B, sl.version)
	}
	took := time.Since(sl.sent)
	s.pol.instr.answered(sl.key, sl.group, took)
	s.view.countAnswered(sl.group, took)
	s.answers.complete(sl, frame)
}

// rewriteSlack is what a rewrite may add to an answer beyond its size
// before the budget is settled after the fact.
const rewriteSlack = 4 << 10

// decodeFactor is what kmsg's decoded form of an answer costs per byte of
// it: a 20,000-partition Metadata answer of 520 KB decodes into 2.2 MB.
const decodeFactor = 5

// decodeCost is the memory a rewrite's decoding of an n-byte answer to key
// holds. Produce and Fetch answers are decoded only when they carry
// NodeEndpoints, which are rare; the cost is capped at a session's share,
// so that a huge answer is still let through.
func (s *session) decodeCost(key int16, n int) int {
	if key == router.KeyProduce || key == router.KeyFetch {
		return 0
	}
	return int(min(int64(decodeFactor*n), s.srv.budget.Share()))
}

// LaneBuffer implements upstream.Handler: the answer's buffer comes out of
// the session's budget.
func (s *session) LaneBuffer(sl *slot, n int) *bufpool.Buf {
	return s.answers.buffer(sl, n)
}

// LaneDone implements upstream.Handler: an idle lane is forgotten and
// dialed again on next use; a lane that failed with requests in flight takes
// the session down, exactly as a broker failure would.
func (s *session) LaneDone(l *upstream.Lane[*slot], err error) {
	g, found := s.dropLane(l)
	if err != nil {
		if found {
			s.learnFloors(g, l.Addr(), err)
		}
		s.close(reasonUpstreamFailed, err)
	}
}

func (s *session) answerLocally(h router.RequestHeader, resp []byte) (string, error) {
	if !s.acquire() {
		return reasonClosed, nil
	}
	g := s.pol.classifier.Classify(h.Key)
	s.pol.instr.request(h.Key, g) // counted, but no upstream latency to observe
	s.view.countRequest(g)
	if s.answers.push(h, g, g, bufpool.Wrap(resp), 0, router.Scopes{}) == nil {
		return reasonClosed, nil
	}
	s.answers.deliver()
	return "", nil
}

// acquire takes an in-flight token, blocking (and so not reading the
// client) while limits.max_inflight_per_connection answers are owed.
func (s *session) acquire() bool {
	select {
	case s.sem <- struct{}{}:
		return true
	default:
		return s.acquireBlocking()
	}
}

// drain stops reading new requests; the session closes once every answer
// it owes has been written.
func (s *session) drain() {
	s.mu.Lock()
	s.draining = true
	_ = s.conn.SetReadDeadline(time.Now())
	s.mu.Unlock()
}

// answerWriteFailed implements answerOwner.
func (s *session) answerWriteFailed(reason string, err error) { s.close(reason, err) }

// answersWritten implements answerOwner.
func (s *session) answersWritten(n int) { s.view.countOut(n) }

// answersDelivered implements answerOwner: a drained session closes once
// every answer it owed is out.
func (s *session) answersDelivered() {
	s.mu.Lock()
	finished := s.readerDone && s.draining
	s.mu.Unlock()
	if finished {
		s.close(reasonShutdown, nil)
	}
}

// close is the session's one teardown path: idempotent, the first reason
// wins, the client connection and every lane close together.
func (s *session) close(reason string, err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	lanes := append([]*upstream.Lane[*slot](nil), s.lanes...)
	clear(s.lanes)
	s.mu.Unlock()

	close(s.closedCh)
	s.pol.instr.sessionClosed(reason) // counted before the client can see the close
	if resetOnClose(reason) {
		abort(s.conn) // reset.go
	}
	_ = s.conn.Close()
	for _, l := range lanes {
		if l != nil {
			l.Release() // back to the upstream pool if nothing is in flight, else closed
		}
	}
	owed := s.answers.close()
	s.logClosed(reason, err, owed)
	close(s.endedCh)
}
