package router

import "github.com/twmb/franz-go/pkg/kmsg"

// Request is one request frame parsed once, at the session's read: its
// fixed header, its client id and where its body starts. Every step that
// reads a request (its checks, acks, timeout, fetch wait, barrier scopes,
// the client's software) reads it from this view instead of walking the
// header again.
type Request struct {
	RequestHeader
	// Frame is the request after its size prefix; Fetch wait patching
	// writes into it.
	Frame []byte
	// ClientID aliases Frame; nil for a null client id or a header too
	// short to carry one.
	ClientID []byte
	// Flexible: the v2 request header (a tag section after the client id),
	// and compact strings in the body.
	Flexible bool
	// bodyAt is where the body starts in Frame; 0 when the header past its
	// fixed 8 bytes is truncated.
	bodyAt int
	// unread is what the frame's size declares past Frame: the tail of a
	// large Produce still in the client's socket (listener/tail.go).
	unread int
}

// ParseRequest parses a request frame (after the size prefix). It fails
// only for a frame shorter than the fixed header; a client id or tag
// section that does not fit leaves the view without a body, which every
// reader of the body reports as ErrTruncated.
func (p *Protocol) ParseRequest(frame []byte) (Request, error) {
	h, err := ParseRequestHeader(frame)
	if err != nil {
		return Request{}, err
	}
	req := Request{RequestHeader: h, Frame: frame, Flexible: p.FlexibleRequest(h.Key, h.Version)}
	r := reader{b: frame, off: 8}
	id := r.nullableString()
	if req.Flexible {
		r.skipTags()
	}
	if !r.bad {
		req.ClientID, req.bodyAt = id, r.off
	}
	return req, nil
}

// ParseRequestHead parses the first bytes of a request frame of size bytes
// (after the size prefix) whose rest has not been read: its checks see
// what the head shows, against the size declared.
func (p *Protocol) ParseRequestHead(head []byte, size int) (Request, error) {
	q, err := p.ParseRequest(head)
	q.unread = max(size-len(head), 0)
	return q, err
}

// Body returns a reader at the start of the request body.
func (q *Request) body() (reader, error) {
	if q.bodyAt == 0 {
		return reader{}, ErrTruncated
	}
	return reader{b: q.Frame, off: q.bodyAt}, nil
}

// BodyOffset is where the body starts in Frame.
func (q *Request) BodyOffset() (int, error) {
	if q.bodyAt == 0 {
		return 0, ErrTruncated
	}
	return q.bodyAt, nil
}

// skipString skips a nullable string of a flexible or classic body.
func (q *Request) skipString(r *reader) {
	if q.Flexible {
		r.compactNullableString()
	} else {
		r.nullableString()
	}
}

// decodeBody decodes the request body with kmsg, a version kmsg knows,
// and stores the result in into when it is not nil.
func decodeBody(q *Request, into *kmsg.Request) error {
	r, err := q.body()
	if err != nil {
		return err
	}
	req := kmsg.RequestForKey(q.Key)
	req.SetVersion(q.Version)
	if err := req.ReadFrom(q.Frame[r.off:]); err != nil {
		return err
	}
	if into != nil {
		*into = req
	}
	return nil
}
