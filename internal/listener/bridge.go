package listener

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/kproxy/kproxy/internal/bridge"
	"github.com/kproxy/kproxy/internal/budget"
	"github.com/kproxy/kproxy/internal/bufpool"
	"github.com/kproxy/kproxy/internal/router"
	"github.com/kproxy/kproxy/internal/upstream"
)

// The version bridge (compat.version_bridge, docs/BRIDGE.md): a request of
// a version the brokers removed goes up translated to the lowest version
// they accept, and its answer comes back down to the client's version. The
// gate decides (bridgeVerdict); the session translates the frame before
// the lane sees it (bridgeUp) and the answer before the answer queue does
// (bridgeDown). Everything else passes as it was read.

// bridgedKeys are the APIs whose removed versions the bridge translates: an
// ApiVersions answer lists them from v0 (router.Rewriter.AdvertiseBridged).
func bridgedKeys() []int16 {
	var keys []int16
	for k := int16(0); k < 128; k++ {
		if bridge.Floor(k) > 0 {
			keys = append(keys, k)
		}
	}
	return keys
}

// bridgeVerdict rules on a request the client may send: forwarded as is
// (to 0), translated up to version to, or, for an old version nothing can
// translate, answered UNSUPPORTED_VERSION in the client's own version
// rather than forwarded to a broker that closes the connection on it.
func (g *requestGate) bridgeVerdict(q *router.Request) (to int16, answer []byte) {
	if !g.pol.bridge || g.brokerAPIs == nil {
		return 0, nil
	}
	b := g.brokerAPIs.Load()
	if b == nil {
		return 0, nil
	}
	target, bridged, ok := b.Target(q.Key, q.Version)
	switch {
	case bridged && ok:
		return target, nil
	case !ok:
		resp, err := bridge.UnsupportedVersion(q.Frame, q.Key, q.Version)
		if err != nil {
			return 0, nil // kproxy cannot even say so: the broker answers as it will
		}
		return 0, resp
	}
	return 0, nil
}

// learnFloors is called when the broker at addr closed lane g: if it had a
// request of a version Kafka 4.0 removed unanswered, sent as is because the
// broker that answered kproxy's ApiVersions accepts it, the broker may be a
// 4.x one that refuses it (a cluster in a rolling upgrade), and the server
// checks (Server.checkFloors). The client whose request it was sees its
// connection close, as it would have without kproxy, and its retry is
// bridged if the broker was one. An acks=0 Produce is owed no answer, but
// a lane that closes (err) after one sent as is with no answer since may
// have been closed over it: the check runs too, so that the producer's
// next records, on the connection it dials again, are bridged rather than
// lost one connection at a time.
func (s *session) learnFloors(g router.Group, addr string, err error) {
	if !s.pol.bridge {
		return
	}
	var refused *slot
	s.answers.walkOwed(func(sl *slot) {
		if refused == nil && sl.lane == g && !sl.done && sl.bridge == nil && sl.version < bridge.Floor(sl.key) {
			refused = sl
		}
	})
	switch {
	case refused != nil:
		s.srv.checkFloors(addr, s.pol.protocol.Name(refused.key), refused.version)
	case errors.Is(err, upstream.ErrClosedAfterAcks0):
		if v := s.acks0Removed.Load(); v > 0 {
			s.srv.checkFloors(addr, s.pol.protocol.Name(int16(kmsg.Produce)), int16(v-1))
		}
	}
}

// reasonCorruptRecords keys the rate limit of the warning for a bridged
// Produce's corrupt partitions, which end no session.
const reasonCorruptRecords = "corrupt_records"

// bridgeUp translates frame (the client's request, read in full) to version
// to. What the translation holds is charged to the session's budget: the
// decoded request, reserved before it is made (held to what a frame's
// growth is, a session's share past the frame itself, so a frame the budget
// could read is never left waiting for more than the budget can give), and
// every buffer it writes into, decompressed records included, as it is lent
// (pooledFrame).
func (s *session) bridgeUp(frame *bufpool.Buf, q *router.Request, to int16) (*bufpool.Buf, *bridge.Exchange, string, error) {
	if s.tail.lr.N > 0 {
		var err error
		if frame, err = s.readTail(frame); err != nil {
			reason, err := s.readError(err, true)
			return nil, nil, reason, err
		}
	}
	key, from := q.Key, q.Version
	reserve := int(min(int64(len(frame.B)+rewriteSlack), s.srv.budget.Share()))
	if !s.acct.Take(reserve, frame.Charged(), budget.Request, s.closedCh) {
		s.srv.pool.Put(frame)
		return nil, nil, reasonClosed, nil
	}
	own := frame.Charged() + reserve
	into := s.lend(func(n, lent int) bool { return s.acct.TryTake(n, own+lent, budget.Request) })
	out, x, err := bridge.UpAlloc(into.allocator(), frame.B[4:], key, from, to, s.srv.cfg.Limits.MaxFrameBytes)
	s.srv.pool.Put(frame) // q aliased it: read nothing of q below
	s.acct.Release(reserve)
	if err != nil {
		into.drop()
		s.pol.instr.frameError(frameMalformed)
		return nil, nil, reasonBadFrame, fmt.Errorf("client sent %s v%d (api key %d) that the version bridge cannot translate to v%d: %w",
			s.pol.protocol.Name(key), from, key, to, err)
	}
	up := into.holding(out)
	if n, why := x.Corrupt(); n > 0 {
		if ok, left := s.srv.lim.failed.allow(reasonCorruptRecords, time.Now()); ok {
			s.log.Warn("client sent corrupt records: answered CORRUPT_MESSAGE, as a broker does", zap.String("client_id", s.view.clientID()),
				zap.String("api", s.pol.protocol.Name(key)), zap.Int16("api_version", from), zap.Int("partitions", n), zap.Error(why),
				zap.Int("not_logged", left))
		}
	}
	s.pol.instr.bridged(key, from, to)
	if s.view.noteBridged(key, from, to) {
		s.log.Info("version bridged", zap.String("client_id", s.view.clientID()), zap.String("api", s.pol.protocol.Name(key)),
			zap.Int16("from_version", from), zap.Int16("to_version", to))
	}
	return up, x, "", nil
}

// bridgeDown translates a bridged request's answer back to the version the
// client sent; false: the session is closing (it closed it, or the budget
// wait ended with it). Its budget is charged as bridgeUp's is, under the
// rule of the answer's place in line.
func (s *session) bridgeDown(sl *slot, frame *bufpool.Buf) (*bufpool.Buf, bool) {
	decoding := s.decodeCost(sl.key, len(frame.B)) + rewriteSlack
	if !s.answers.take(sl, decoding) {
		s.srv.pool.Put(frame)
		return nil, false
	}
	into := s.lend(func(n, _ int) bool { return s.answers.tryTake(sl, n) })
	pieces, err := sl.bridge.DownAlloc(into.allocator(), frame.B, s.srv.cfg.Limits.MaxFrameBytes)
	s.acct.Release(decoding)
	s.srv.pool.Put(frame)
	if err != nil {
		into.drop()
		s.close(reasonRewriteFailed, fmt.Errorf("version bridge: %s v%d answer to the client's v%d: %w",
			s.pol.protocol.Name(sl.key), sl.bridge.To, sl.bridge.From, err))
		return nil, false
	}
	return into.holdingPieces(pieces), true
}

// pooledFrame lends a translation the pool's memory, for its frame and
// for what it builds on the way (decompressed records, a buffer it
// outgrew), so that a bridged frame costs no fresh (zeroed, then collected)
// allocation; and it charges every byte lent to the session's budget as it
// lends it: a small compressed frame can inflate to limits.max_frame_bytes,
// and a client must not make kproxy hold more than the budget by sending a
// few. Once the translation has returned, only the frame is still in use.
//
// A translation cannot wait for budget while it holds part of what it
// needs: translations that each hold part would wait on one another for
// ever. So it takes what the budget's rules give at once, and past that
// holds the server's overdraft, which one translation at a time may hold,
// and is lent the rest beyond the budget. So translations at work hold the
// budget and one translation past it at most; the translated frame, once
// made, stays charged as it was lent, past its session's share by at most
// itself, as a rewritten answer is (the lane reads the session's next
// answer only within the share).
type pooledFrame struct {
	pool *bufpool.Pool
	acct *budget.Account
	// try takes n more bytes of budget for a translation that holds lent
	// already, if the budget's rules allow it now.
	try       func(n, lent int) bool
	overdraft chan struct{} // the server's
	mu        sync.Mutex    // a Fetch answer's partitions convert at once
	bufs      []*bufpool.Buf
	lent      int
	indebted  bool // holds the overdraft
}

func (s *session) lend(try func(n, lent int) bool) *pooledFrame {
	return &pooledFrame{pool: s.srv.pool, acct: s.acct, try: try, overdraft: s.srv.overdraft}
}

func (p *pooledFrame) get(n int) []byte {
	c := bufpool.Cap(n)
	p.mu.Lock()
	if p.indebted || !p.try(c, p.lent) {
		if !p.indebted {
			// Even when the session is closing: translations of
			// sessions that close would overdraw all at once. The
			// wait ends, as the holder waits for nothing.
			p.overdraft <- struct{}{}
			p.indebted = true
		}
		p.acct.Force(c)
	}
	p.lent += c
	b := p.pool.Get(n)
	b.Charge(p.acct, c)
	p.bufs = append(p.bufs, b)
	p.mu.Unlock()
	return b.B[:0]
}

// free puts back a Buf the translation no longer uses, crediting its charge
// at once: a 64 MiB inflation grows through buffers of 32 and 16 MiB.
func (p *pooledFrame) free(b []byte) {
	start := &b[:1][0]
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, lent := range p.bufs {
		if &lent.B[:1][0] == start && cap(lent.B) == cap(b) {
			p.lent -= cap(b)
			p.bufs = slices.Delete(p.bufs, i, i+1)
			p.pool.Put(lent)
			return
		}
	}
}

func (p *pooledFrame) allocator() bridge.Allocator {
	return bridge.Allocator{Get: p.get, Free: p.free}
}

// repay gives the overdraft back, once the translation is done.
func (p *pooledFrame) repay() {
	if p.indebted {
		p.indebted = false
		<-p.overdraft
	}
}

// holding returns the Buf that holds out, the translated frame, and puts
// back every other one lent: the pooled Buf when out is still in it, else
// out wrapped and charged (the translation outgrew what it was lent).
func (p *pooledFrame) holding(out []byte) *bufpool.Buf {
	return p.holdingPieces([][]byte{out})
}

// holdingPieces is holding for a frame in pieces: the Buf of the first,
// with those of the rest in More.
func (p *pooledFrame) holdingPieces(pieces [][]byte) *bufpool.Buf {
	held := make([]*bufpool.Buf, len(pieces))
	at := make(map[*byte]int, len(pieces)) // a piece begins the Buf it is in
	for i, piece := range pieces {
		if cap(piece) > 0 {
			at[&piece[:1][0]] = i
		}
	}
	for _, b := range p.bufs {
		if i, ok := at[&b.B[:1][0]]; ok && held[i] == nil && cap(pieces[i]) == cap(b.B) {
			b.B, held[i] = pieces[i], b
			continue
		}
		p.pool.Put(b)
	}
	p.bufs = nil
	p.repay()
	for i := range held {
		if held[i] == nil {
			held[i] = bufpool.Wrap(pieces[i])
			p.acct.Force(cap(pieces[i])) // it exists already
			held[i].Charge(p.acct, cap(pieces[i]))
		}
	}
	head := held[0]
	head.More = append(head.More, held[1:]...)
	return head
}

func (p *pooledFrame) drop() {
	for _, b := range p.bufs {
		p.pool.Put(b)
	}
	p.bufs = nil
	p.repay()
}

// bridgedVersions is what a session's client had bridged, for operators:
// one entry per API and version pair, in the order first seen.
type bridgedVersions struct {
	mu    sync.Mutex
	pairs []bridgedPair
}

type bridgedPair struct{ key, from, to int16 }

// noteBridged records a pair; true the first time the session bridges
// anything, when the session logs it.
func (v *sessionView) noteBridged(key, from, to int16) (first bool) {
	b := &v.bridged
	p := bridgedPair{key, from, to}
	b.mu.Lock()
	defer b.mu.Unlock()
	if slices.Contains(b.pairs, p) {
		return false
	}
	b.pairs = append(b.pairs, p)
	return len(b.pairs) == 1
}

// describe is the session's bridged versions in words: "Produce v2→v3,
// Fetch v3→v4"; "" when nothing was bridged.
func (b *bridgedVersions) describe(p *router.Protocol) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	parts := make([]string, 0, len(b.pairs))
	for _, x := range b.pairs {
		parts = append(parts, fmt.Sprintf("%s v%d→v%d", p.Name(x.key), x.from, x.to))
	}
	return strings.Join(parts, ", ")
}

func (v *sessionView) clientID() string {
	if id := v.ident.Load(); id != nil {
		return id.clientID
	}
	return ""
}

// A client of Kafka 0.8 sends OffsetCommit v0 and OffsetFetch v0 to any
// broker: their offsets lived in ZooKeeper, which every broker could reach.
// Bridged up, they name a group whose offsets only its coordinator keeps,
// so kproxy sends them on to it, on a lane of their own (session.redirects).

// maxCachedCoordinators bounds a session's cache of group coordinators: a
// 0.8 client commits for a group or two.
const maxCachedCoordinators = 64

// coordinatorBound reports whether a bridged request must reach its group's
// coordinator, whichever broker the client sent it to.
func coordinatorBound(key, version int16) bool {
	return version == 0 && (key == int16(kmsg.OffsetCommit) || key == int16(kmsg.OffsetFetch))
}

// redirect returns the lane of q's group coordinator when it is not the
// session's own broker; ok false: the session's own lane will do (it is the
// coordinator, or kproxy could not find out, and the broker answers
// NOT_COORDINATOR as it would have).
func (s *session) redirect(q *router.Request) (router.Group, bool) {
	group, ok := v0Group(q)
	if !ok {
		return 0, false
	}
	own, err := s.ownAddr()
	if err != nil {
		return 0, false
	}
	addr, known := s.coordinators[group]
	if !known {
		ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.Upstream.DialTimeout+5*time.Second)
		node, err := s.srv.dialer.FindCoordinator(ctx, own, group)
		cancel()
		if err != nil {
			s.log.Warn("cannot find the coordinator of an old client's group: its offsets request goes to the broker it was sent to",
				zap.String("group_id", group), zap.Error(err))
			return 0, false
		}
		if addr, err = s.srv.brokers.Addr(node); err != nil {
			return 0, false
		}
		if s.coordinators == nil || len(s.coordinators) >= maxCachedCoordinators {
			s.coordinators = map[string]string{} // a client naming group after group starts it over
		}
		s.coordinators[group] = addr
	}
	if addr == own {
		return 0, false
	}
	i := slices.Index(s.redirects, addr)
	if i < 0 {
		i = len(s.redirects)
		s.redirects = append(s.redirects, addr)
	}
	return router.Group(s.pol.classifier.Len() + i), true
}

// ownAddr is the upstream address of the session's own lanes.
func (s *session) ownAddr() (string, error) {
	if s.broker != bootstrapNode {
		return s.srv.brokers.Addr(s.broker)
	}
	if s.seed != "" {
		return s.seed, nil
	}
	if seeds := s.srv.brokers.Seeds(); len(seeds) > 0 {
		return seeds[0], nil
	}
	return "", errors.New("no seed")
}

// dialRedirect opens a lane's connection to a group coordinator.
func (s *session) dialRedirect(addr string) (net.Conn, string, error) {
	if conn, _ := s.srv.upstreams.Take(addr); conn != nil {
		return conn, addr, nil
	}
	conn, err := s.srv.dialer.Dial(context.Background(), addr)
	if err != nil {
		s.dialFailed(err)
		return nil, addr, fmt.Errorf("dial group coordinator at %s: %w", addr, err)
	}
	return conn, addr, nil
}

// v0Group reads the group id that OffsetCommit v0 and OffsetFetch v0 both
// begin with.
func v0Group(q *router.Request) (string, bool) {
	off, err := q.BodyOffset()
	if err != nil || len(q.Frame) < off+2 {
		return "", false
	}
	n := int(binary.BigEndian.Uint16(q.Frame[off:]))
	if n > len(q.Frame)-off-2 {
		return "", false
	}
	return string(q.Frame[off+2 : off+2+n]), true
}
