package listener

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/internal/bridge"
	"github.com/kproxy/kproxy/internal/router"
)

// Request policy, one session's part: what a request must be to go
// upstream, which lane, whether an answer is owed, how long its broker may
// hold it, and what it names for barriers. The gate decides; the session
// acts on its verdict (answers locally, closes, or forwards).

// frameMalformed: a request kproxy reads or patches whose body does not
// parse, or a Produce with a length past its frame's end
// (kproxy_frame_errors_total{reason}).
const frameMalformed = "malformed"

// routing.unknown_apis: hide. A key kmsg does not know is left out of the
// ApiVersions answer; a client that sends one anyway is disconnected, not
// forwarded, since its answer could carry a broker address in a field
// kproxy cannot read. There is no answer to give instead: kproxy does not
// know the key's response layout, and a broker closes the connection on a
// request it cannot parse, too.
const (
	reasonUnknownAPI = "unknown_api"
	frameUnknownAPI  = "unknown_api"
)

// requestGate applies the session's requestPolicy with what the session has
// learned so far: what its ApiVersions answer offered, the rebalance
// timeout its member sent, its ordering and fetch-wait window. The reader
// goroutine calls it, except noteAdvertised, which a lane reader calls.
type requestGate struct {
	pol      *requestPolicy
	ordering *atomic.Pointer[orderingPolicy] // the server's, live: the fetch wait budget
	ord      *sessionOrdering                // the session's: relaxed, the hold window

	// advertised is what the session's ApiVersions answer offered the
	// client; nil until it has one.
	advertised atomic.Pointer[apiRanges]
	rebalance  time.Duration // the longest JoinGroup rebalance timeout sent, for SyncGroup
	// member: the client sent a group member's request (router.
	// GroupMembership) on this session, so its heartbeats and commits
	// share this socket with whatever it produces.
	member bool
	// brokerAPIs is what the brokers accept (the server's, live): where
	// the version bridge takes a request; nil in gate unit tests.
	brokerAPIs *atomic.Pointer[bridge.Broker]
}

// verdict is the gate's decision on one request. With err set the session
// closes with reason; with answer set kproxy answers it itself; otherwise
// it goes upstream on group's lane.
type verdict struct {
	reason string
	err    error
	answer []byte
	// warn is logged with an answer: what the client did wrong.
	warn string

	group  router.Group
	expect bool          // the broker answers it (all but Produce with acks=0)
	wait   time.Duration // how long the broker may hold it (the stall timer)
	scopes router.Scopes // what it names, for later requests' barriers
	// cappedFrom is the MaxWaitMillis the fetch wait budget lowered; 0:
	// not lowered.
	cappedFrom int32
	// bridgeTo is the version the version bridge translates the request
	// to (bridge.go); 0: forwarded as sent.
	bridgeTo int16
}

// decide rules on a request that passed client SASL. It may lower a
// Fetch's MaxWaitMillis in q's frame.
func (g *requestGate) decide(q *router.Request) verdict {
	p := g.pol.protocol
	switch {
	case q.Key == router.KeySaslHandshake || q.Key == router.KeySaslAuthenticate:
		return verdict{answer: p.RejectSASL(q.RequestHeader), warn: "client sasl refused: kproxy does not pass client SASL through"}
	case q.Key == router.KeyApiVersions && q.Version > p.MaxVersion(q.Key):
		return verdict{answer: p.UnsupportedApiVersions(q.RequestHeader)}
	case g.pol.rewriter.Hidden(q.Key):
		g.pol.instr.frameError(frameUnknownAPI)
		return verdict{reason: reasonUnknownAPI, err: fmt.Errorf("client sent API key %d v%d, which kproxy does not know: not forwarded (routing.unknown_apis is hide; its answer could carry broker addresses kproxy cannot rewrite)", q.Key, q.Version)}
	}
	if reason, err := g.check(q); err != nil {
		return verdict{reason: reason, err: err}
	}
	bridgeTo, unsupported := g.bridgeVerdict(q)
	if unsupported != nil {
		return verdict{answer: unsupported, warn: "client sent a version the brokers removed and kproxy cannot translate: answered UNSUPPORTED_VERSION"}
	}
	v := verdict{group: g.pol.classifier.Classify(q.Key), expect: true, bridgeTo: bridgeTo}
	if q.Key == router.KeyProduce {
		acks, _ := router.ProduceAcks(q) // check read it
		v.expect = acks != 0
	}
	g.member = g.member || router.GroupMembership(q.Key)
	v.cappedFrom = g.capFetchWait(q)
	if v.expect {
		v.wait = g.timeout(q)
		if g.pol.barriers.Scoped(q.Key) {
			v.scopes = router.RequestScopes(q)
		}
	}
	return v
}

// check refuses a request that must not go upstream: an API or version the
// client was not offered, or a body the proxy must read and cannot. The
// broker would drop the connection for either, and the session would end
// blaming the broker.
func (g *requestGate) check(q *router.Request) (string, error) {
	p := g.pol.protocol
	decoded := g.pol.rewriter.Decoded(q.Key)
	if adv := g.advertised.Load(); adv != nil && q.Key != router.KeyApiVersions && !adv.allows(q.Key, q.Version) {
		g.pol.instr.frameError(frameUnsupportedVersion)
		offered := "not offered"
		if q.Key >= 0 && int(q.Key) < len(adv.has) && adv.has[q.Key] {
			offered = fmt.Sprintf("offered v%d-v%d", adv.min[q.Key], adv.max[q.Key])
		}
		return reasonUnsupportedVersion, g.refusal(q, fmt.Sprintf("outside what kproxy advertised in ApiVersions (%s)", offered))
	}
	if g.pol.rewriter.Capped(q.Key) && q.Version > p.MaxVersion(q.Key) {
		g.pol.instr.frameError(frameUnsupportedVersion)
		return reasonUnsupportedVersion, g.refusal(q, fmt.Sprintf("above v%d, the highest version kproxy knows and can vouch carries no unrewritten broker address; the client skipped ApiVersions or ignored its answer", p.MaxVersion(q.Key)))
	}
	if err := p.CheckRequest(q, decoded); err != nil {
		g.pol.instr.frameError(frameMalformed)
		return reasonBadFrame, g.refusal(q, fmt.Sprintf("body cannot be parsed: %v", err))
	}
	return "", nil
}

// refusal is the error a refused request closes its session with; the
// close's log line carries it, naming the API, version and what is wrong.
func (g *requestGate) refusal(q *router.Request, what string) error {
	return fmt.Errorf("client sent %s v%d (api key %d): %s", g.pol.protocol.Name(q.Key), q.Version, q.Key, what)
}

// timeout is how long the broker may hold the request: its own timeout
// field, or for SyncGroup, which waits on the group's rebalance, the
// rebalance timeout the member sent in JoinGroup.
func (g *requestGate) timeout(q *router.Request) time.Duration {
	switch q.Key {
	case router.KeySyncGroup:
		return g.rebalance
	case router.KeyJoinGroup:
		t := g.pol.protocol.RequestTimeout(q)
		g.rebalance = max(g.rebalance, t)
		return t
	}
	return g.pol.protocol.RequestTimeout(q)
}

// capFetchWait applies the fetch wait budget to a strict session's request:
// a group member's request opens the hold window, and a Fetch / ShareFetch
// inside the window gets its MaxWaitMillis lowered to the budget; it
// returns the wait the client asked for when it lowered it. The window also
// opens when an answer is held behind an unfinished Fetch
// (orderingAnswered). A session with neither, such as a pure fetch session,
// is untouched.
func (g *requestGate) capFetchWait(q *router.Request) int32 {
	pol := g.ordering.Load()
	if pol.budget == 0 || g.ord.relaxed.Load() {
		return 0
	}
	if router.GroupMembership(q.Key) {
		g.ord.holdAt.Store(time.Now().UnixNano())
		return 0
	}
	if !isLongPoll(q.Key) {
		return 0
	}
	held := g.ord.holdAt.Load()
	if held == 0 || time.Since(time.Unix(0, held)) > pol.window {
		return 0
	}
	was, capped, err := g.pol.protocol.CapFetchWait(q, pol.budget)
	if err != nil || !capped {
		return 0 // check refused a malformed fetch already
	}
	g.pol.instr.fetchCapped.Inc()
	return was
}

// apiRanges is the API versions an ApiVersions answer offered a client.
type apiRanges struct {
	min, max [256]int16
	has      [256]bool
}

func (a *apiRanges) allows(key, version int16) bool {
	return key >= 0 && int(key) < len(a.has) && a.has[key] && version >= a.min[key] && version <= a.max[key]
}

// noteAdvertised records the versions the session's ApiVersions answer
// (as the client will read it) offers: the client may use nothing else.
func (g *requestGate) noteAdvertised(frame []byte, version int16) {
	if len(frame) < 8 || version > g.pol.protocol.MaxVersion(router.KeyApiVersions) {
		return
	}
	body := frame[8:] // ApiVersions answers never have a flexible header
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(version)
	if resp.ReadFrom(body) != nil || resp.ErrorCode != 0 {
		return // an error answer: the client asks again
	}
	a := new(apiRanges)
	for _, k := range resp.ApiKeys {
		if k.ApiKey >= 0 && int(k.ApiKey) < len(a.has) {
			a.has[k.ApiKey], a.min[k.ApiKey], a.max[k.ApiKey] = true, k.MinVersion, k.MaxVersion
		}
	}
	g.advertised.Store(a)
}
