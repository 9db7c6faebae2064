package router

import (
	"encoding/binary"
	"errors"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Well-known API keys the proxy treats specially.
const (
	KeyProduce          = int16(kmsg.Produce)
	KeyFetch            = int16(kmsg.Fetch)
	KeyMetadata         = int16(kmsg.Metadata)
	KeyFindCoordinator  = int16(kmsg.FindCoordinator)
	KeySaslHandshake    = int16(kmsg.SASLHandshake)
	KeyApiVersions      = int16(kmsg.ApiVersions)
	KeySaslAuthenticate = int16(kmsg.SASLAuthenticate)
	KeyDescribeCluster  = int16(kmsg.DescribeCluster)
	KeyShareFetch       = int16(kmsg.ShareFetch)
	KeyShareAcknowledge = int16(kmsg.ShareAcknowledge)
)

// keySpan is one past the highest API key kmsg knows; keys at or above it
// are unknown to the proxy and forwarded as opaque frames.
const keySpan = 128

// ErrTruncated is returned for a frame too short for what it claims to hold.
var ErrTruncated = errors.New("truncated frame")

// Protocol holds per-API facts derived once from kmsg: which versions use
// flexible (tagged-field) headers and the highest version kmsg can decode.
// It is immutable after NewProtocol and safe for concurrent use.
type Protocol struct {
	firstFlexible [keySpan]int16 // -1: never flexible or unknown key
	maxVersion    [keySpan]int16 // -1: unknown key
	names         [keySpan]string
	throttleFirst [keySpan]uint64 // bit v: version v's response opens with ThrottleMillis (throttle.go)
}

// NewProtocol builds the tables from the kmsg this binary was built with.
func NewProtocol() *Protocol {
	p := new(Protocol)
	p.throttleFirst = throttleAtStart()
	for k := range int16(keySpan) {
		p.firstFlexible[k], p.maxVersion[k] = -1, -1
		req := kmsg.RequestForKey(k)
		if req == nil {
			continue
		}
		p.names[k] = kmsg.NameForKey(k)
		p.maxVersion[k] = req.MaxVersion()
		for v := int16(0); v <= req.MaxVersion(); v++ {
			req.SetVersion(v)
			if req.IsFlexible() {
				p.firstFlexible[k] = v
				break
			}
		}
	}
	return p
}

// Known reports whether kmsg knows the API key.
func (p *Protocol) Known(key int16) bool {
	return key >= 0 && key < keySpan && p.maxVersion[key] >= 0
}

// MaxVersion is the highest version of key that kmsg can decode, or -1.
func (p *Protocol) MaxVersion(key int16) int16 {
	if !p.Known(key) {
		return -1
	}
	return p.maxVersion[key]
}

// Name is the Kafka API name of key, or "Unknown" for keys kmsg lacks.
func (p *Protocol) Name(key int16) string {
	if !p.Known(key) {
		return "Unknown"
	}
	return p.names[key]
}

// FlexibleRequest reports whether a request of key/version uses the v2
// request header (client id followed by a tag section).
func (p *Protocol) FlexibleRequest(key, version int16) bool {
	return p.Known(key) && p.firstFlexible[key] >= 0 && version >= p.firstFlexible[key]
}

// FlexibleResponseHeader reports whether the response header carries a tag
// section after the correlation id. ApiVersions never does (KIP-511), so
// that a client can parse it before knowing the broker's versions.
func (p *Protocol) FlexibleResponseHeader(key, version int16) bool {
	return key != KeyApiVersions && p.FlexibleRequest(key, version)
}

// RequestHeader is the fixed part of every request: the first 8 bytes after
// the size prefix.
type RequestHeader struct {
	Key           int16
	Version       int16
	CorrelationID int32
}

// ParseRequestHeader reads the fixed header from a request frame body (the
// bytes after the 4-byte size prefix).
func ParseRequestHeader(body []byte) (RequestHeader, error) {
	if len(body) < 8 {
		return RequestHeader{}, ErrTruncated
	}
	return RequestHeader{
		Key:           int16(binary.BigEndian.Uint16(body[0:])),
		Version:       int16(binary.BigEndian.Uint16(body[2:])),
		CorrelationID: int32(binary.BigEndian.Uint32(body[4:])),
	}, nil
}

// ProduceAcks reads the acks field of a Produce request. acks=0 requests
// get no response from the broker.
func ProduceAcks(q *Request) (int16, error) {
	r, err := q.body()
	if err != nil {
		return 0, err
	}
	if q.Version >= 3 {
		q.skipString(&r) // TransactionalID
	}
	acks := r.int16()
	if r.bad {
		return 0, ErrTruncated
	}
	return acks, nil
}
