package router

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AddressMap translates an upstream broker's address into the address clients must use.
// Implementations create the listener for nodeID before returning.
type AddressMap interface {
	Advertise(nodeID int32, host string, port int32) (advHost string, advPort int32, err error)
	// AdvertiseController is Advertise for a KRaft controller (DescribeCluster
	// EndpointType 2). Controller ids share no port with broker ids: in
	// combined mode node 1 is a broker and a controller at two addresses.
	AdvertiseController(nodeID int32, host string, port int32) (advHost string, advPort int32, err error)
}

// errMalformed is returned when a walk over a response body ends anywhere
// but exactly at its last byte: the layout was not what the version says.
var errMalformed = errors.New("malformed response body")

// handler rewrites the responses of one API.
type handler struct {
	// scan, when set, reads the body without allocating and reports whether
	// it needs decoding at all, and at which version: most responses never
	// carry an address, and an ApiVersions error answer is v0 whatever the
	// request asked for. Without scan every response is decoded at the
	// request's version.
	scan func(body []byte, version int16) (at int16, decode bool, err error)

	// rewrite edits the decoded response in place and reports whether
	// anything changed; unchanged responses go out as the upstream frame.
	rewrite func(resp kmsg.Response, am AddressMap) (changed bool, err error)

	// splice, when set, is used instead of decode and rewrite: it rewrites
	// the address-bearing part of body and copies the rest as bytes, for
	// answers whose addresses sit beside parts that grow with the cluster.
	// Its output is what decode, rewrite and encode would produce; rewrite
	// stays set as that reference (and for NeedsRewrite).
	splice func(corr []byte, flexHeader bool, body []byte, version int16, am AddressMap) (out []byte, changed bool, err error)
}

// Rewriter rewrites response frames that carry broker addresses and caps ApiVersions.
// It is immutable after NewRewriter and safe for concurrent use.
type Rewriter struct {
	p           *Protocol
	handlers    [keySpan]handler // rewrite nil: the frame is forwarded untouched
	saslServer  bool             // AdvertiseSASL (api_versions.go)
	hideUnknown bool             // HideUnknownAPIs (api_versions.go)
	bridged     [keySpan]bool    // AdvertiseBridged (api_versions.go)
	bridging    bool
}

// NewRewriter builds the per-key dispatch table for the APIs of
// docs/ARCHITECTURE.md, "Broker addresses".
func NewRewriter(p *Protocol) *Rewriter {
	r := &Rewriter{p: p}
	r.handlers[KeyProduce] = handler{scan: scanProduce, rewrite: rewriteProduce}
	r.handlers[KeyFetch] = handler{scan: scanFetch, rewrite: rewriteFetch}
	r.handlers[KeyMetadata] = handler{rewrite: rewriteMetadata, splice: spliceMetadata}
	r.handlers[KeyFindCoordinator] = handler{rewrite: rewriteFindCoordinator}
	r.handlers[KeyApiVersions] = handler{scan: r.scanApiVersions, rewrite: r.capApiVersions}
	r.handlers[KeyDescribeCluster] = handler{rewrite: rewriteDescribeCluster}
	r.handlers[KeyShareFetch] = handler{rewrite: rewriteShareFetch}
	r.handlers[KeyShareAcknowledge] = handler{rewrite: rewriteShareAcknowledge}
	for k := range r.handlers {
		// A kmsg without the API cannot decode its responses; clients of
		// such an API are forwarded as for any unknown key.
		if !p.Known(int16(k)) {
			r.handlers[k] = handler{}
		}
	}
	return r
}

// NeedsRewrite reports whether responses to this key may need a rewrite: Produce(0), Fetch(1), Metadata(3), FindCoordinator(10), ApiVersions(18), DescribeCluster(60), ShareFetch(78), ShareAcknowledge(79). Cheap (array lookup).
func (r *Rewriter) NeedsRewrite(key int16) bool {
	return key >= 0 && key < keySpan && r.handlers[key].rewrite != nil
}

// MayRewrite reports whether an answer to key at version can need a
// rewrite, so that an answer for which it is false may be streamed to the
// client before its last byte arrives. Produce below v9 and Fetch below
// v12 have no top-level tag section, where NodeEndpoints would be.
func (r *Rewriter) MayRewrite(key, version int16) bool {
	switch key {
	case KeyProduce:
		return version >= produceTags
	case KeyFetch:
		return version >= fetchTags
	}
	return r.NeedsRewrite(key)
}

// Decoded reports whether the proxy must decode responses of key (the keys above); a client request
// of such a key with version > p.MaxVersion(key) must be refused by the caller.
//
// It is the same set as NeedsRewrite: a Produce or Fetch response is decoded
// only when it carries NodeEndpoints, but a version newer than kmsg's could
// move them where the walker does not look, so every version is bounded.
func (r *Rewriter) Decoded(key int16) bool { return r.NeedsRewrite(key) }

// Rewrite takes a complete response frame: 4-byte big-endian size prefix, 4-byte correlation id,
// a response-header tag section iff p.FlexibleResponseHeader(key, version), then the body — for a request
// of key/version. It returns the frame to send to the client: the SAME slice, unmodified, when nothing
// needed changing (must not allocate on that path), else a newly built frame (size prefix correct,
// same correlation id, empty header tag section if flexible header) and rewrote=true.
//
// On error out is nil: a response that cannot be read may hold an address
// the client must not see.
func (r *Rewriter) Rewrite(frame []byte, key, version int16, am AddressMap) (out []byte, rewrote bool, err error) {
	if !r.NeedsRewrite(key) {
		return frame, false, nil
	}
	h := &r.handlers[key]
	if top := r.p.MaxVersion(key); version < 0 || version > top {
		return nil, false, fmt.Errorf("%s v%d response: the proxy decodes at most v%d", r.p.Name(key), version, top)
	}
	flexHeader := r.p.FlexibleResponseHeader(key, version)
	body, err := responseBody(frame, flexHeader)
	if err != nil {
		return nil, false, decodeError(key, version, err)
	}
	at, decode := version, true
	if h.scan != nil {
		if at, decode, err = h.scan(body, version); err != nil {
			return nil, false, decodeError(key, version, err)
		}
	}
	if !decode {
		return frame, false, nil
	}
	if h.splice != nil {
		out, changed, err := h.splice(frame[4:8], flexHeader, body, at, am)
		if errors.Is(err, kbin.ErrNotEnoughData) { // what kmsg's decode says
			return nil, false, decodeError(key, at, err)
		}
		if err != nil {
			return nil, false, fmt.Errorf("%s v%d response: %w", r.p.Name(key), version, err)
		}
		if !changed {
			return frame, false, nil
		}
		return out, true, nil
	}
	resp := kmsg.ResponseForKey(key)
	resp.SetVersion(at)
	// Unsafe: strings alias the frame, saving a copy of every topic name
	// and record batch. Nothing aliased outlives this call: the new frame
	// is encoded before returning, and advertise clones the host it hands
	// to the AddressMap.
	if err := resp.(kmsg.UnsafeReadFrom).UnsafeReadFrom(body); err != nil {
		return nil, false, decodeError(key, at, err)
	}
	changed, err := h.rewrite(resp, am)
	if err != nil {
		return nil, false, fmt.Errorf("%s v%d response: %w", r.p.Name(key), version, err)
	}
	if !changed {
		return frame, false, nil
	}
	return buildResponse(frame[4:8], flexHeader, resp, len(frame)), true, nil
}

// decodeError names the API and version a response failed to decode at.
func decodeError(key, version int16, err error) error {
	return fmt.Errorf("decode %s v%d response: %w", kmsg.NameForKey(key), version, err)
}

// responseBody checks the size prefix and returns the bytes after the
// response header.
func responseBody(frame []byte, flexHeader bool) ([]byte, error) {
	if len(frame) < 8 || binary.BigEndian.Uint32(frame) != uint32(len(frame)-4) {
		return nil, ErrTruncated
	}
	r := reader{b: frame, off: 8}
	if flexHeader {
		r.skipTags()
	}
	if r.bad {
		return nil, ErrTruncated
	}
	return frame[r.off:], nil
}

// buildResponse frames an encoded response: size, correlation id, an empty
// header tag section when the header is flexible, body. sizeHint is the
// upstream frame's length; advertised hosts are rarely much longer.
func buildResponse(corr []byte, flexHeader bool, resp kmsg.Response, sizeHint int) []byte {
	out := make([]byte, 8, sizeHint+256)
	copy(out[4:], corr)
	if flexHeader {
		out = append(out, 0)
	}
	out = resp.AppendTo(out)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out
}

// endpoint exposes the address fields of one broker entry, whatever kmsg
// type holds them. A nil host marks an entry to leave alone.
type endpoint struct {
	node int32
	host *string
	port *int32
}

// advertise points one endpoint at the proxy and reports whether it changed.
func advertise(am AddressMap, e endpoint) (bool, error) {
	if e.host == nil {
		return false, nil
	}
	// The host may alias the upstream frame (UnsafeReadFrom), and an
	// AddressMap may keep it; the frame's buffer is reused after we return.
	host, port, err := am.Advertise(e.node, strings.Clone(*e.host), *e.port)
	if err != nil {
		return false, fmt.Errorf("advertise node %d (%s:%d): %w", e.node, *e.host, *e.port, err)
	}
	if host == *e.host && port == *e.port {
		return false, nil
	}
	*e.host, *e.port = host, port
	return true, nil
}

// advertiseAll advertises every entry of bs; at reads one entry's endpoint.
func advertiseAll[B any](am AddressMap, bs []B, at func(*B) endpoint) (bool, error) {
	changed := false
	for i := range bs {
		c, err := advertise(am, at(&bs[i]))
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	return changed, nil
}
