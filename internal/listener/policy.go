package listener

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kproxy/kproxy/internal/router"
)

// Request policy: what a request must be to go upstream, and how long its
// broker may hold it.

// frameMalformed: a request kproxy reads or patches whose body does not
// parse (kproxy_frame_errors_total{reason}).
const frameMalformed = "malformed"

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
func (s *session) noteAdvertised(frame []byte, version int16) {
	if len(frame) < 8 || version > s.pol.protocol.MaxVersion(router.KeyApiVersions) {
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
	s.advertised.Store(a)
}

// checkRequest refuses a request that must not go upstream: an API or
// version the client was not offered, or a body the proxy must read and
// cannot. The broker would drop the connection for either, and the session
// would end blaming the broker.
func (s *session) checkRequest(q *router.Request) (string, error) {
	h := q.RequestHeader
	p := s.pol.protocol
	decoded := s.pol.rewriter.Decoded(h.Key)
	if adv := s.advertised.Load(); adv != nil && h.Key != router.KeyApiVersions && !adv.allows(h.Key, h.Version) {
		s.pol.instr.frameError(frameUnsupportedVersion)
		offered := "not offered"
		if h.Key >= 0 && int(h.Key) < len(adv.has) && adv.has[h.Key] {
			offered = fmt.Sprintf("offered v%d-v%d", adv.min[h.Key], adv.max[h.Key])
		}
		return reasonUnsupportedVersion, s.refusal(h, fmt.Sprintf("outside what kproxy advertised in ApiVersions (%s)", offered))
	}
	if s.pol.rewriter.Capped(h.Key) && h.Version > p.MaxVersion(h.Key) {
		s.pol.instr.frameError(frameUnsupportedVersion)
		return reasonUnsupportedVersion, s.refusal(h, fmt.Sprintf("above v%d, the highest version kproxy knows and can vouch carries no unrewritten broker address; the client skipped ApiVersions or ignored its answer", p.MaxVersion(h.Key)))
	}
	if err := p.CheckRequest(q, decoded); err != nil {
		s.pol.instr.frameError(frameMalformed)
		return reasonBadFrame, s.refusal(h, fmt.Sprintf("body cannot be parsed: %v", err))
	}
	return "", nil
}

// refusal is the error a refused request closes its session with; the
// close's log line carries it, naming the API, version and what is wrong.
func (s *session) refusal(h router.RequestHeader, what string) error {
	return fmt.Errorf("client sent %s v%d (api key %d): %s", s.pol.protocol.Name(h.Key), h.Version, h.Key, what)
}

// requestTimeout is how long the broker may hold the request: its own
// timeout field, or for SyncGroup, which waits on the group's rebalance,
// the rebalance timeout the member sent in JoinGroup.
func (s *session) requestTimeout(q *router.Request) time.Duration {
	switch q.Key {
	case router.KeySyncGroup:
		return s.rebalance
	case router.KeyJoinGroup:
		t := s.pol.protocol.RequestTimeout(q)
		s.rebalance = max(s.rebalance, t)
		return t
	}
	return s.pol.protocol.RequestTimeout(q)
}
