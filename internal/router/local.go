package router

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The proxy answers a few requests itself instead of forwarding them. These
// builders return complete response frames (size prefix included).

// RejectSASL answers SaslHandshake or SaslAuthenticate: client SASL is not
// forwarded, since every lane is a separate upstream connection that the
// client's handshake would authenticate at most one of.
func (p *Protocol) RejectSASL(h RequestHeader) []byte {
	const why = "kproxy does not pass client SASL through; configure credentials on the proxy's upstream side"
	var resp kmsg.Response
	switch h.Key {
	case KeySaslHandshake:
		r := kmsg.NewPtrSASLHandshakeResponse()
		r.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		resp = r
	default:
		r := kmsg.NewPtrSASLAuthenticateResponse()
		r.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		msg := why
		r.ErrorMessage = &msg
		resp = r
	}
	return p.encodeLocal(h, resp)
}

// UnsupportedApiVersions answers an ApiVersions request newer than the
// proxy can decode the way a broker does (KIP-511): UNSUPPORTED_VERSION in a
// v0 body listing the ApiVersions range, so the client retries lower.
func (p *Protocol) UnsupportedApiVersions(h RequestHeader) []byte {
	r := kmsg.NewPtrApiVersionsResponse()
	r.ErrorCode = kerr.UnsupportedVersion.Code
	r.ApiKeys = []kmsg.ApiVersionsResponseApiKey{{ApiKey: KeyApiVersions, MinVersion: 0, MaxVersion: p.MaxVersion(KeyApiVersions)}}
	return p.encodeLocal(RequestHeader{Key: KeyApiVersions, Version: 0, CorrelationID: h.CorrelationID}, r)
}

// Answer encodes resp as the proxy's own answer to the request h: the
// client's correlation id, the request's version (capped to what kmsg
// knows), a response header with tags when that version is flexible.
func (p *Protocol) Answer(h RequestHeader, resp kmsg.Response) []byte {
	return p.encodeLocal(h, resp)
}

func (p *Protocol) encodeLocal(h RequestHeader, resp kmsg.Response) []byte {
	version := min(h.Version, resp.MaxVersion())
	resp.SetVersion(version)
	buf := make([]byte, 8, 128)
	binary.BigEndian.PutUint32(buf[4:], uint32(h.CorrelationID))
	if p.FlexibleResponseHeader(h.Key, version) {
		buf = append(buf, 0)
	}
	buf = resp.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	return buf
}
