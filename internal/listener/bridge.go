package listener

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/kproxy/kproxy/internal/bridge"
	"github.com/kproxy/kproxy/internal/budget"
	"github.com/kproxy/kproxy/internal/bufpool"
	"github.com/kproxy/kproxy/internal/router"
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

// bridgeUp translates frame (the client's request, read in full) to version
// to. The translation is charged to the session's budget before it is made
// (about twice the frame, settled once its size is known): the decoded
// request while it lives, and the output.
func (s *session) bridgeUp(frame *bufpool.Buf, q *router.Request, to int16) (*bufpool.Buf, *bridge.Exchange, string, error) {
	if s.tail.lr.N > 0 {
		var err error
		if frame, err = s.readTail(frame); err != nil {
			reason, err := s.readError(err, true)
			return nil, nil, reason, err
		}
	}
	key, from := q.Key, q.Version
	reserve := 2*len(frame.B) + rewriteSlack
	if !s.acct.Take(reserve, frame.Charged(), budget.Request, s.closedCh) {
		s.srv.pool.Put(frame)
		return nil, nil, reasonClosed, nil
	}
	out, x, err := bridge.Up(frame.B[4:], key, from, to, s.srv.cfg.Limits.MaxFrameBytes)
	s.srv.pool.Put(frame) // q aliased it: read nothing of q below
	if err != nil {
		s.acct.Release(reserve)
		s.pol.instr.frameError(frameMalformed)
		return nil, nil, reasonBadFrame, fmt.Errorf("client sent %s v%d (api key %d) that the version bridge cannot translate to v%d: %w",
			s.pol.protocol.Name(key), from, key, to, err)
	}
	up := bufpool.Wrap(out)
	s.settle(reserve, cap(out))
	up.Charge(s.acct, cap(out))
	s.pol.instr.bridged(key, from, to)
	if s.view.noteBridged(key, from, to) {
		s.log.Info("version bridged", zap.String("client_id", s.view.clientID()), zap.String("api", s.pol.protocol.Name(key)),
			zap.Int16("from_version", from), zap.Int16("to_version", to))
	}
	return up, x, "", nil
}

// bridgeDown translates a bridged request's answer back to the version the
// client sent; false: the session is closing (it closed it, or the budget
// wait ended with it).
func (s *session) bridgeDown(sl *slot, frame *bufpool.Buf) (*bufpool.Buf, bool) {
	decoding := s.decodeCost(sl.key, len(frame.B))
	reserve := len(frame.B) + rewriteSlack
	if !s.answers.take(sl, decoding+reserve) {
		s.srv.pool.Put(frame)
		return nil, false
	}
	out, err := sl.bridge.Down(frame.B, s.srv.cfg.Limits.MaxFrameBytes)
	s.acct.Release(decoding)
	s.srv.pool.Put(frame)
	if err != nil {
		s.acct.Release(reserve)
		s.close(reasonRewriteFailed, fmt.Errorf("version bridge: %s v%d answer to the client's v%d: %w",
			s.pol.protocol.Name(sl.key), sl.bridge.To, sl.bridge.From, err))
		return nil, false
	}
	down := bufpool.Wrap(out)
	s.settle(reserve, cap(out))
	down.Charge(s.acct, cap(out))
	return down, true
}

// settle turns a reservation into the size actually held: the bytes exist
// already, so anything beyond the reservation is forced.
func (s *session) settle(reserved, held int) {
	if held > reserved {
		s.acct.Force(held - reserved)
	} else {
		s.acct.Release(reserved - held)
	}
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
