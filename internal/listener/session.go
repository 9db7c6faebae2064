package listener

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/kproxy/kproxy/internal/bufpool"
	"github.com/kproxy/kproxy/internal/metrics"
	"github.com/kproxy/kproxy/internal/router"
	"github.com/kproxy/kproxy/internal/upstream"
)

// session serves one client connection: its reader goroutine (run) reads
// and routes requests, each group's lane carries that group's requests to
// the broker, and whichever goroutine completes an answer writes what may
// go back to the client (deliver).
type session struct {
	srv    *sessionServer // the server with the routing of the session's accept (reload.go)
	conn   net.Conn
	log    *zap.Logger
	broker int32 // bootstrapNode: any seed
	start  time.Time

	// seed is the upstream a bootstrap session's lanes all dial, chosen on
	// first dial so that every lane reaches the same broker.
	seed string

	clientSASL clientSASL  // listen.sasl.mode terminate (sasl.go)
	view       sessionView // for operators (snapshot.go)

	sem chan struct{} // one token per request awaiting its answer
	ord sessionOrdering
	bar sessionBarriers

	mu         sync.Mutex
	lanes      []*upstream.Lane // by router.Group
	slots      []*slot          // answers owed to the client, in request order
	head       int
	readerDone bool
	draining   bool
	writing    bool // a goroutine is in deliver, writing to the client
	closed     bool

	closedCh chan struct{}

	// owned by the goroutine in deliver
	iov, out net.Buffers
	batch    []*slot
}

// slot is one answer owed to the client.
type slot struct {
	key, version int16
	group        router.Group
	sent, doneAt time.Time
	frame        *bufpool.Buf
	done         bool
	snap         []uint64      // sessionOrdering.acc when the request was sent
	wait         time.Duration // the request's own timeout (stall.go)
	scopes       router.Scopes // what a later request's barrier compares (barrier.go)
}

func newSession(server *Server, conn net.Conn, broker int32) *session {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	srv := server.forSession()
	return &session{
		srv:      srv,
		conn:     conn,
		log:      srv.log.With(zap.String("client", conn.RemoteAddr().String()), zap.Int32("broker", broker)),
		broker:   broker,
		start:    time.Now(),
		sem:      make(chan struct{}, srv.liveLimits.Load().MaxInflightPerConnection),
		lanes:    make([]*upstream.Lane, srv.classifier.Len()),
		closedCh: make(chan struct{}),
		ord:      sessionOrdering{acc: make([]uint64, 2*srv.classifier.Len())},
		bar:      newSessionBarriers(srv.barriers),
	}
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
		s.deliver() // the session closes once every answer is out
	} else {
		s.close(reason, err)
	}
	<-s.closedCh
}

// read loops over client frames until the client goes away, sends bad
// input, or the session is closed or drained.
func (s *session) read() (reason string, err error) {
	if reason, err := s.handshake(); err != nil {
		return reason, err
	}
	br := s.srv.pool.NewReader(s.conn, 8<<10) // holds no buffer while the client is idle
	var size [4]byte
	for {
		if _, err := io.ReadFull(br, size[:]); err != nil {
			return s.readError(err, false)
		}
		n := int32(binary.BigEndian.Uint32(size[:]))
		if reason, err := s.checkSize(size, n); err != nil {
			return reason, err
		}
		frame := s.srv.pool.Get(4 + int(n))
		copy(frame.B, size[:])
		if _, err := io.ReadFull(br, frame.B[4:]); err != nil {
			s.srv.pool.Put(frame)
			return s.readError(err, true)
		}
		s.srv.instr.clientIn.Add(float64(len(frame.B)))
		if reason, err := s.route(frame); err != nil {
			return reason, err
		}
		s.countIn(4 + int(n)) // after route, which learns the client id
	}
}

func (s *session) readError(err error, midFrame bool) (string, error) {
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	switch {
	case draining && errors.Is(err, os.ErrDeadlineExceeded):
		return reasonShutdown, nil
	case midFrame && (err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF)):
		s.srv.instr.frameError(frameTruncated)
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
	case n < 8:
		kind, why = frameTruncated, fmt.Sprintf("frame of %d bytes is too short for a request header", n)
	default:
		return "", nil
	}
	s.srv.instr.frameError(kind)
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
	p := s.srv.protocol
	body := frame.B[4:]
	h, _ := router.ParseRequestHeader(body) // size >= 8 checked
	if s.srv.log.Core().Enabled(zap.DebugLevel) {
		s.log.Debug("request", zap.String("api", p.Name(h.Key)), zap.Int16("api_key", h.Key), zap.Int16("api_version", h.Version),
			zap.Int32("correlation_id", h.CorrelationID), zap.String("group", s.srv.classifier.Name(s.srv.classifier.Classify(h.Key))))
	}
	if s.srv.users != nil {
		if handled, reason, err := s.terminateSASL(frame, h); handled {
			return reason, err
		}
	}
	s.identify(h, body)
	if !s.ord.decided {
		s.decideOrdering(h, body)
	}
	switch {
	case h.Key == router.KeySaslHandshake || h.Key == router.KeySaslAuthenticate:
		s.srv.pool.Put(frame)
		s.log.Warn("client sasl refused: kproxy does not pass client SASL through", zap.String("api", p.Name(h.Key)))
		return s.answerLocally(h, p.RejectSASL(h))
	case h.Key == router.KeyApiVersions && h.Version > p.MaxVersion(h.Key):
		s.srv.pool.Put(frame)
		return s.answerLocally(h, p.UnsupportedApiVersions(h))
	case s.srv.rewriter.Hidden(h.Key):
		s.srv.pool.Put(frame)
		return s.refuseUnknownAPI(h)
	case s.srv.rewriter.Capped(h.Key) && h.Version > p.MaxVersion(h.Key):
		s.srv.pool.Put(frame)
		s.srv.instr.frameError(frameUnsupportedVersion)
		return reasonUnsupportedVersion, fmt.Errorf("client sent %s v%d, above v%d, the highest version kproxy knows and can vouch carries no unrewritten broker address; the client skipped ApiVersions or ignored its answer",
			p.Name(h.Key), h.Version, p.MaxVersion(h.Key))
	}

	expectResponse := true
	if h.Key == router.KeyProduce {
		acks, err := p.ProduceAcks(body, h)
		if err != nil {
			s.srv.pool.Put(frame)
			s.srv.instr.frameError(frameTruncated)
			return reasonBadFrame, fmt.Errorf("produce request: %w", err)
		}
		expectResponse = acks != 0
	}
	if !s.awaitBarriers(body, h) {
		s.srv.pool.Put(frame)
		return reasonClosed, nil
	}
	s.holdRoute(body, h)
	group := s.srv.classifier.Classify(h.Key)
	var owner *slot
	if expectResponse {
		if !s.acquire() {
			s.srv.pool.Put(frame)
			return reasonClosed, nil
		}
		owner = s.push(h, group, nil, p.RequestTimeout(body, h))
		s.scopeRequest(owner, frame, h)
	}
	s.srv.instr.request(h.Key, group)
	s.countRequest(group)
	if err := s.send(group, frame, h.CorrelationID, expectResponse, owner); err != nil {
		return reasonDialFailed, err
	}
	return "", nil
}

// send forwards on the group's lane, dialing it on first use and again when
// the lane closed while idle.
func (s *session) send(g router.Group, frame *bufpool.Buf, corr int32, expect bool, owner *slot) error {
	for range 2 {
		lane, err := s.lane(g)
		if err != nil {
			s.srv.pool.Put(frame)
			return err
		}
		var o any
		if owner != nil {
			o = owner
		}
		if err := lane.Send(frame, corr, expect, o); !errors.Is(err, upstream.ErrLaneClosed) {
			return err
		}
		s.dropLane(lane)
	}
	s.srv.pool.Put(frame)
	return errors.New("upstream connection closed twice in a row while sending")
}

func (s *session) lane(g router.Group) (*upstream.Lane, error) {
	s.mu.Lock()
	l := s.lanes[g]
	s.mu.Unlock()
	if l != nil {
		return l, nil
	}
	conn, addr, err := s.dial()
	if err != nil {
		return nil, err
	}
	gauge := s.srv.metrics.UpstreamConnections.WithLabelValues(s.brokerLabel(), s.srv.classifier.Name(g))
	l = s.srv.upstreams.NewLane(conn, addr, s, &s.srv.laneOpts, gauge)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Release() // unused: back to the upstream pool
		return nil, errors.New("session closed")
	}
	s.lanes[g] = l
	s.mu.Unlock()
	s.log.Debug("lane dialed", zap.String("group", s.srv.classifier.Name(g)), zap.String("upstream", addr))
	return l, nil
}

func (s *session) dial() (net.Conn, string, error) {
	ctx := context.Background()
	if s.broker != bootstrapNode {
		addr, err := s.srv.brokers.Addr(s.broker)
		if err != nil {
			return nil, "", err
		}
		if conn, _ := s.srv.upstreams.Take(addr); conn != nil {
			return conn, addr, nil
		}
		conn, err := s.srv.dialer.Dial(ctx, addr)
		if err != nil {
			s.dialFailed(err)
			return nil, addr, fmt.Errorf("dial broker %d at %s: %w", s.broker, addr, err)
		}
		return conn, addr, nil
	}
	seeds := s.srv.brokers.Seeds()
	if s.seed != "" {
		seeds = []string{s.seed}
	}
	if conn, addr := s.srv.upstreams.Take(seeds...); conn != nil {
		s.seed = addr
		return conn, addr, nil
	}
	var errs []error
	for _, addr := range seeds {
		conn, err := s.srv.dialer.Dial(ctx, addr)
		if err == nil {
			s.seed = addr
			return conn, addr, nil
		}
		s.dialFailed(err)
		errs = append(errs, fmt.Errorf("dial seed %s: %w", addr, err))
	}
	return nil, "", errors.Join(errs...)
}

func (s *session) brokerLabel() string {
	if s.broker == bootstrapNode {
		return "bootstrap"
	}
	if id, ok := controllerOf(s.broker); ok {
		return fmt.Sprintf("controller-%d", id)
	}
	return fmt.Sprint(s.broker)
}

func (s *session) dropLane(l *upstream.Lane) {
	s.mu.Lock()
	for g, cur := range s.lanes {
		if cur == l {
			s.lanes[g] = nil
		}
	}
	s.mu.Unlock()
}

// LaneResponse implements upstream.Handler: rewrite if the API carries
// broker addresses, then hand the answer to the writer.
func (s *session) LaneResponse(owner any, frame *bufpool.Buf) {
	sl := owner.(*slot)
	s.srv.instr.throttle(sl.key, sl.version, frame.B[8:])
	if s.srv.rewriter.NeedsRewrite(sl.key) {
		out, rewrote, err := s.srv.rewriter.Rewrite(frame.B, sl.key, sl.version, s.srv)
		if err != nil {
			s.srv.pool.Put(frame)
			s.close(reasonRewriteFailed, err)
			return
		}
		if rewrote {
			s.srv.pool.Put(frame)
			frame = bufpool.Wrap(out)
			s.srv.instr.rewrite(sl.key)
		}
	}
	took := time.Since(sl.sent)
	s.srv.instr.answered(sl.key, sl.group, took)
	s.countAnswered(sl.group, took)
	s.complete(sl, frame)
}

// LaneDone implements upstream.Handler: an idle lane is forgotten and
// dialed again on next use; a lane that failed with requests in flight takes
// the session down, exactly as a broker failure would.
func (s *session) LaneDone(l *upstream.Lane, err error) {
	s.dropLane(l)
	if err != nil {
		s.close(reasonUpstreamFailed, err)
	}
}

func (s *session) answerLocally(h router.RequestHeader, resp []byte) (string, error) {
	if !s.acquire() {
		return reasonClosed, nil
	}
	g := s.srv.classifier.Classify(h.Key)
	s.srv.instr.request(h.Key, g) // counted, but no upstream latency to observe
	s.countRequest(g)
	s.push(h, g, bufpool.Wrap(resp), 0)
	s.deliver()
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
	s.mu.Unlock()
	_ = s.conn.SetReadDeadline(time.Now())
}
